"Mixing stage: config rules, catalog, exact composition (property tests of the exactness claims), report, save, MLflow."
import json, warnings
import numpy as np, pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from forge_nb.mixing import (MixConfig, get_config, set_config, reset_config, mix, MixResult, CATEGORIES, register_category,
                             categories)
from forge_nb.mixing.config import _USER_CATEGORIES
from forge_nb.mixing.mixer import apportion, plan_counts, assign, permute_index, rows_for, Exhausted, trainable_tokens
from forge_nb.mixing.report import MixReport
from forge_nb.mixing.catalog import Catalog, Source, default_catalog, register_source, HUB_SOURCES

def _rec(i, cat='customer', n_words=3):
    return {'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': ' '.join(['w'] * n_words)}], 'id': i}

@pytest.fixture(autouse=True)
def _clean():
    reset_config(); yield; reset_config(); _USER_CATEGORIES.clear()

# ---------------------------------------------------------------- config rules
def test_reference_categories_and_defaults():
    assert len(CATEGORIES) == 22 and 'reasoning-instruction-following' in CATEGORIES
    c = get_config()
    assert c.customer_data_percent == 50 and abs(sum(c.weights.values()) - 100) < 1e-9

@pytest.mark.parametrize('bad,msg', [
    (dict(customer_data_percent=50, weights={'stme': 100}), "did you mean 'stem'"),
    (dict(customer_data_percent=50, weights={'long_contxt': 100}), "did you mean 'long-context'"),
    (dict(customer_data_percent=50, weights={'math': 50, 'chat': 49.98}), 'sum to 99.98'),
    (dict(customer_data_percent=100, weights={'math': 0.5}), 'must be 0'),
    (dict(customer_data_percent=-1, weights={}), 'outside 0-100'),
    (dict(customer_data_percent=50, weights={'math': 101, 'chat': -1}), 'outside 0-100'),
    (dict(customer_data_percent='half', weights={'math': 100}), 'expected a number'),
    (dict(customer_data_percent=float('nan'), weights={'math': 100}), 'outside 0-100'),
])
def test_rules_reject(bad, msg):
    with pytest.raises((ValueError, KeyError, TypeError), match=msg): MixConfig(**bad)

def test_tolerance_and_all_zero():
    MixConfig(50, {'math': 50, 'chat': 49.995})  # within ±0.01
    assert MixConfig(100, {'math': 0}).weights == {}
    with pytest.raises(ValueError): MixConfig(0, {})

def test_set_config_validates_and_keeps_old_on_error():
    set_config({'customer_data_percent': 25, 'nova_math_percent': 100})
    with pytest.raises(KeyError, match="did you mean 'customer_data_percent'"): set_config({'customer_percent': 25, 'weights': {}})
    assert get_config() == MixConfig(25, {'math': 100})
    assert set_config(MixConfig(10, {'rai': 100})).weights == {'rai': 100.0}

def test_roundtrips(tmp_path):
    register_category('legal-qa')
    c = MixConfig(30, {'legal-qa': 33.3, 'reasoning-rag': 33.3, 'math': 33.4})
    for suf in ('json', 'yaml'):
        p = c.save(tmp_path / f'm.{suf}')
        _USER_CATEGORIES.clear()  # a fresh process: the file registers its custom categories
        assert MixConfig.load(p) == c
    assert MixConfig.from_mlflow_params({k: str(v) for k, v in c.to_mlflow_params().items()}) == c

def test_mlflow_roundtrip(tmp_path, monkeypatch):
    mlflow = pytest.importorskip('mlflow')
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f'sqlite:///{tmp_path}/mlflow.db')
    c = MixConfig(75, {'baseline': 60, 'instruction-following': 40})
    with mlflow.start_run() as run: mlflow.log_params(c.to_mlflow_params())
    params = mlflow.get_run(run.info.run_id).data.params
    assert MixConfig.from_mlflow_params(params) == c

# ---------------------------------------------------------------- exactness properties
weights_st = st.one_of(st.lists(st.floats(0.01, 100, allow_nan=False), min_size=1, max_size=12),
                       st.lists(st.integers(1, 100).map(float), min_size=1, max_size=12))  # whole percentages: exact ties

@settings(max_examples=300, deadline=None)
@given(w=weights_st, n=st.integers(0, 3000), b=st.integers(1, 64))
def test_plan_counts_exact(w, n, b):
    C = plan_counts(w, n, b, seed=n)
    share = np.asarray(w) / np.sum(w)
    assert (C.sum(0) == apportion(w, n)).all()              # epoch: exact Hamilton totals
    assert (np.abs(C.sum(0) - share * n) < 1 + 1e-9).all()  # ... within one row of the exact share
    assert (C.sum(1)[: n // b] == b).all() and C.sum() == n
    full = C[: n // b]
    if len(full): assert np.abs(full - share * b).max() < 1  # every full batch within one example
    assert (C >= 0).all()

@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=weights_st, sizes=st.lists(st.integers(0, 50), min_size=12, max_size=12), n=st.integers(1, 600), b=st.integers(1, 40),
       seed=st.integers(0, 2**31))
def test_assign_properties(w, sizes, n, b, seed):
    S = len(w); sizes = sizes[:S]
    if not any(s > 0 for s in sizes): return
    m = assign([f's{i}' for i in range(S)], w, sizes, n, batch_size=b, seed=seed)
    assert len(m) == n and set(m.empty) == {f's{i}' for i in range(S) if sizes[i] == 0}
    share = np.asarray(m.shares)
    C = m.counts()
    assert (C.sum(0) == apportion(share, n)).all()
    if n // b: assert np.abs(C[: n // b] - share * b).max() < 1
    for s in range(S):
        r = m.row[m.source == s]
        assert ((r >= 0) & (r < max(sizes[s], 1))).all()
        if len(r):
            k = min(len(r), sizes[s])            # first pass: no row twice before every row once
            assert len(set(r[:k].tolist())) == k
            assert np.bincount(r).max() == -(-len(r) // sizes[s])  # repeats are spread evenly over passes
    m2 = assign([f's{i}' for i in range(S)], w, sizes, n, batch_size=b, seed=seed)
    assert (m2.source == m.source).all() and (m2.row == m.row).all()  # reproducible

@settings(max_examples=60, deadline=None)
@given(w=st.lists(st.floats(0.05, 10), min_size=2, max_size=6), data=st.data(), n=st.integers(1, 400))
def test_token_mode_bounds(w, data, n):
    S = len(w)
    lens = [np.array(data.draw(st.lists(st.integers(1, 30), min_size=5, max_size=40))) for _ in range(S)]
    m = assign([f's{i}' for i in range(S)], w, [len(x) for x in lens], n, batch_size=8, unit='tokens', lengths=lens)
    share = np.asarray(m.shares); L = max(x.max() for x in lens)
    tok = np.zeros(S); X = 0
    for s, r in zip(m.source, m.row):  # at every prefix of the stream
        l = lens[s][r]; tok[s] += l; X += l
        d = share * X - tok
        assert (d > -lens[s].max() - 1e-9)[s] and (d > -L - 1e-9).all()  # never ahead by more than one of its own examples
        assert (d < (S - 1) * L + 1e-9).all()                              # never behind by more than S-1 examples

def test_permutation_is_bijective_large():
    n = 1_000_003
    p = permute_index(np.arange(n), n, np.uint64(12345))
    assert np.unique(p).size == n and p.min() == 0 and p.max() == n - 1

def test_zero_weight_never_sampled_and_empty_policies():
    m = assign(['a', 'b', 'c'], [0.5, 0.0, 0.5], [10, 10, 10], 100, batch_size=10)
    assert (m.source != 1).all()
    with pytest.raises(ValueError, match='give them data'):
        assign(['a', 'b'], [.5, .5], [10, 0], 10, on_empty='error')
    with pytest.raises(ValueError, match='no source has both'): assign(['a'], [1.0], [0], 10)

def test_stop_policy_message_and_tiny_sources_reported():
    cust = [_rec(i) for i in range(5)]
    cat = Catalog(); register_source('math', [_rec(i) for i in range(3)], catalog=cat)
    cfg = MixConfig(50, {'math': 100})
    with pytest.raises(Exhausted, match=r"'customer' has 5 rows but the mix needs 10"):
        mix(cust, cfg, n_examples=20, catalog=cat, on_exhausted='stop')
    r = mix(cust, cfg, n_examples=20, catalog=cat, batch_size=4)
    rows = {x['source']: x for x in r.report.rows}
    assert rows['math']['repeated_draws'] == 7 and rows['math']['passes'] == 4 and 'repeated' in rows['math']['note']
    assert rows['customer']['repeated_draws'] == 5

# ---------------------------------------------------------------- mix end to end
def test_mix_default_demo_shape(tmp_path):
    cust = [_rec(i) for i in range(200)]
    res = mix(cust, get_config(), n_examples=640, batch_size=32)
    assert isinstance(res, MixResult) and len(res.records) == 640
    assert all('source' in r for r in res.records)
    for j in range(20):
        assert sum(r['source'] == 'customer' for r in res.records[j * 32:(j + 1) * 32]) == 16
    assert res.report.epoch_rows_off == 0 and res.report.batch_rows_off < 1
    d = res.save(tmp_path / 'mix')
    import pandas as pd
    man = pd.read_parquet(d / 'manifest.parquet')
    assert len(man) == 640 and list(man.columns) == ['position', 'source', 'row', 'batch']
    first = json.loads((d / 'mixed.jsonl').read_text().splitlines()[0])
    assert first == json.loads(json.dumps(res.records[0]))
    assert json.loads((d / 'report.json').read_text())['epoch_rows_off'] == 0
    assert MixConfig.load(d / 'mix_config.json') == get_config()

def test_mix_from_path_and_default_n(tmp_path):
    p = tmp_path / 'train.jsonl'
    p.write_text('\n'.join(json.dumps(_rec(i)) for i in range(30)) + '\n')
    res = mix(p, MixConfig(25, {'math': 50, 'rai': 50}))
    assert len(res) == 120 and sum(r['source'] == 'customer' for r in res.records) == 30
    bad = tmp_path / 'bad.jsonl'; bad.write_text('{"messages": []}\n{oops\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:2'): mix(bad, MixConfig(50), n_examples=4)

def test_mix_redistributes_within_general_part():
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter('always')
        res = mix([_rec(i) for i in range(100)], MixConfig(40, {'agents': 50, 'math': 25, 'chat': 25}), n_examples=100, batch_size=10)
    assert any('agents' in str(w.message) for w in wlist)
    rows = {x['source']: x for x in res.report.rows}
    assert rows['customer']['rows'] == 40 and rows['math']['rows'] == 30 and rows['agents']['rows'] == 0
    with pytest.raises(ValueError, match='give them data'):
        mix([_rec(i) for i in range(100)], MixConfig(40, {'agents': 50, 'math': 50}), n_examples=10, on_empty='error')
    with pytest.raises(ValueError, match='no general data'):
        mix([_rec(i) for i in range(100)], MixConfig(40, {'agents': 100}), n_examples=10)

def test_mix_tokens_with_a_real_tokenizer():
    from transformers import AutoTokenizer
    from forge_nb.core.embedded import tiny_model_path
    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    cust = [_rec(i, n_words=1 + i % 7) for i in range(300)]
    res = mix(cust, MixConfig(30, {'math': 50, 'stem': 50}), n_examples=300, unit='tokens', tokenizer=tok, batch_size=16)
    lens = {r['source']: 0 for r in res.records}
    for r in res.records: lens[r['source']] += trainable_tokens(r, tok)
    X = sum(lens.values())
    assert abs(lens['customer'] / X - 0.30) < 0.02, lens
    assert res.report.epoch_tokens_off <= (3 - 1) * max(trainable_tokens(r, tok) for r in res.records)

def test_seed_changes_stream_not_counts():
    cust = [_rec(i) for i in range(64)]
    a, b = (mix(cust, MixConfig(50), n_examples=128, seed=s) for s in (0, 1))
    assert (a.manifest.counts().sum(0) == b.manifest.counts().sum(0)).all()
    assert not (a.manifest.row == b.manifest.row).all()

# ---------------------------------------------------------------- catalog
def test_catalog_covers_every_category_with_real_ids():
    assert {s.category for s in HUB_SOURCES} == set(CATEGORIES)
    for s in HUB_SOURCES: assert '/' in s.hf_id and s.licence and s.kind == 'hub'

def test_catalog_local_datasets_path(tmp_path):
    f = tmp_path / 'p.jsonl'
    f.write_text('\n'.join(json.dumps({'conversations': [{'from': 'human', 'value': f'hi {i}'}, {'from': 'gpt', 'value': 'yo'}]})
                           for i in range(10)))
    cat = Catalog()
    register_source('chat', 'json', catalog=cat, data_files=str(f), columns={'conversations': 'conversations'})
    pool = cat.pool('chat', 4)
    assert len(pool) == 10 and pool[0]['messages'][1] == {'role': 'assistant', 'content': 'yo'}
    assert cat.pool('chat', 4, mode='hub') == pool  # your local sources are used in every mode

def test_register_source_default_catalog_and_new_category():
    register_source('legal-qa', [_rec(i) for i in range(7)])
    try:
        res = mix([_rec(i) for i in range(10)], MixConfig(50, {'legal-qa': 100}), n_examples=20)
        assert sum(r['source'] == 'legal-qa' for r in res.records) == 10
    finally:
        from forge_nb.mixing import catalog
        catalog._REGISTERED.clear()

def test_auto_mode_offline_without_network(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    cat = default_catalog('auto')
    assert cat.resolved_mode() == 'offline' and len(cat.pool('math', 3)) == 3

def test_catalog_save_to_disk_folder(tmp_path):
    import datasets
    ds = datasets.Dataset.from_list([{'question': f'2+{i}?', 'answer': str(2 + i)} for i in range(8)])
    ds.save_to_disk(str(tmp_path / 'ds'))
    datasets.DatasetDict({'train': ds}).save_to_disk(str(tmp_path / 'dsd'))
    for d in ('ds', 'dsd'):
        s = Source('math', str(tmp_path / d), columns={'prompt': 'question', 'response': 'answer'})
        assert s.kind == 'local'
        recs = s.load(3)
        assert len(recs) == 3 and recs[0]['messages'][1]['content'] == '2'

def test_mixresult_to_dataset_and_prepared_parquet(tmp_path):
    res = mix([_rec(i) for i in range(20)], MixConfig(50, {'math': 100}), n_examples=40, batch_size=8)
    ds = res.to_dataset()
    assert len(ds) == 40 and set(ds['source']) == {'customer', 'math'}
    ds.to_parquet(str(tmp_path / 'train.parquet'))
    back = mix(tmp_path / 'train.parquet', MixConfig(100), n_examples=10)
    assert len(back) == 10 and all(r['source'] == 'customer' for r in back.records)

def test_hub_failure_messages_and_auto_fallback(monkeypatch):
    # HF offline mode makes the real `datasets` hub path fail fast; no network is touched
    monkeypatch.setenv('HF_HUB_OFFLINE', '1'); monkeypatch.setenv('HF_DATASETS_OFFLINE', '1')
    with pytest.raises(ConnectionError, match="mode='offline'"):
        default_catalog('hub').pool('math', 2)
    cat = default_catalog('auto'); cat.mode_used = 'hub'  # as if the probe had said the hub is up
    with pytest.warns(UserWarning, match='using the offline sample'):
        assert len(cat.pool('math', 2)) == 2

def test_bad_customer_record_named():
    with pytest.raises(ValueError, match=r"customer record 1: expected a dict with a 'messages' list.*\['question'\]"):
        mix([_rec(0), {'question': 'q'}], MixConfig(50), n_examples=4)

def test_star_import_includes_lazy_names():
    ns = {}
    exec('from forge_nb.mixing import *', ns)
    assert {'mix', 'MixResult', 'MixConfig', 'get_config', 'set_config'} <= set(ns)

def test_text_records_mix_for_continued_pretraining():
    "CPT data (`text` records) mixes like chat data: exact shares, customer rows unchanged, token counts over all the text."
    docs = [{'text': f'Document {i}: ' + 'word ' * (i % 7 + 3)} for i in range(40)]
    m = mix(docs, MixConfig(50), n_examples=64, batch_size=16)
    cust = [r for r in m.records if r['source'] == 'customer']
    assert len(cust) == 32 and all(r['text'] in {d['text'] for d in docs} for r in cust)
    assert trainable_tokens({'text': 'a b c'}) == 4 and trainable_tokens(docs[0]) == len(docs[0]['text'].split()) + 1 + 1
