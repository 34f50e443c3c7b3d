"Verified catalog: every source read from its fixture (hub layout, card schema) by the same `datasets` path as a hub load; seeded cached samples; default catalog per model; decontamination."
import json, os, warnings
from dataclasses import replace
from pathlib import Path
import pyarrow.parquet as pq, pytest
from forge_nb.mixing import MixConfig, mix, CATEGORIES
from forge_nb.mixing.catalog import HUB_SOURCES, Source, Catalog, catalog_for, verified_catalog, default_catalog, hub_reachable
from forge_nb.mixing.sources import SPECS, arrow_schema, write_fixture
from forge_nb.mixing.samples import sample, sample_path, sample_meta, CatalogUnavailable
from forge_nb.mixing.decontam import NgramIndex, eval_index, mmlu_texts, decontaminate
from forge_nb.core.embedded import tiny_model_path

ROOT = Path(__file__).parents[1]
FIX = ROOT / 'fixtures' / 'catalog'
IDS = [f"{s.category}:{s.hf_id}" for s in HUB_SOURCES]

def local(src: Source) -> Source:
    "The source pointed at its fixture folder: same config, split, columns and filter."
    return replace(src, hf_id=str(FIX / src.hf_id.replace('/', '__')))

@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('FORGE_NB_CATALOG_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('HF_DATASETS_CACHE', str(tmp_path / 'hf'))

def test_every_category_has_a_verified_source():
    assert {s.category for s in HUB_SOURCES} == set(CATEGORIES)
    for s in HUB_SOURCES:
        assert s.url.startswith('https://') and s.files and s.schema and s.licence
        assert s.commercial in (True, False, None)
    flagged = {s.category for s in HUB_SOURCES if s.commercial is not True}
    assert flagged == {'reasoning-factuality', 'translation'}

def test_fixtures_are_written_with_the_card_schema():
    for s in HUB_SOURCES:
        d = FIX / s.hf_id.replace('/', '__')
        assert (d / 'README.md').exists(), d
        shards = sorted(d.glob(s.files))
        assert shards, f'{s}: no shard matches {s.files}'
        if s.format == 'parquet':
            for f in shards: assert pq.read_schema(f).remove_metadata() == arrow_schema(s.schema), f

@pytest.mark.parametrize('streaming', [True, False])
@pytest.mark.parametrize('i', range(len(HUB_SOURCES)), ids=IDS)
def test_source_maps_fixture_rows_through_datasets(i, streaming):
    import datasets
    s = local(HUB_SOURCES[i])
    ds = datasets.load_dataset(s.hf_id, s.config, split=s.split, streaming=streaming)
    rows = [r for r in ds if all(r.get(k) == v for k, v in (s.filter or {}).items())]
    assert rows, f'{s}: filter {s.filter} keeps no fixture row'
    if not streaming: assert set(ds.column_names) == set(s.schema)
    for r in rows[:5]:
        rec = s.to_record(r)
        assert rec['category'] == s.category and len(rec['messages']) >= 2
        assert all(m['role'] in ('system', 'user', 'assistant', 'tool') and isinstance(m['content'], str) and m['content'] for m in rec['messages'])
        assert rec['messages'][-1]['role'] == 'assistant'

def test_seeded_sample_is_cached_and_reproducible(tmp_path):
    s = local(next(x for x in HUB_SOURCES if x.category == 'chat'))
    a = sample(s, 5, seed=1, buffer_size=8)
    p = sample_path(s, 1)
    assert p.exists() and sample_meta(p)['seed'] == 1 and sample_meta(p)['licence'] == 'MIT' and sample_meta(p)['rows'] == 5
    b = sample(s, 5, seed=1, buffer_size=8)
    assert a == b and sample(s, 3, seed=1) == a[:3]   # a shorter sample is the prefix
    p.unlink()
    c = sample(s, 5, seed=2, buffer_size=8)
    first = [s.to_record(r) for r in __import__('datasets').load_dataset(s.hf_id, split='train_sft', streaming=True).take(5)]
    assert c != a and a != first   # never "the first n rows"
    p.unlink(missing_ok=True); assert sample(s, 5, seed=1, buffer_size=8) == a   # same seed, fresh read: same rows

def test_real_model_offline_without_cache_names_the_fix(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    cust = [{'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': 'a'}]} for i in range(20)]
    with pytest.raises(CatalogUnavailable, match=r'no cached sample at .*FORGE_NB_CATALOG_CACHE.*catalog='):   # the demo falls back on this class
        mix(cust, MixConfig(50, {'math': 100}), model='HuggingFaceTB/SmolLM2-360M-Instruct')
    assert catalog_for(None).mode == 'offline' and catalog_for(str(tiny_model_path())).mode == 'offline'

def test_real_model_reads_the_cache(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    src = next(x for x in HUB_SOURCES if x.category == 'math')
    recs = sample(local(src), 12, seed=0)
    from forge_nb.mixing.samples import write_sample
    write_sample(recs, sample_path(src, 0), {'source': str(src), 'seed': 0, 'licence': src.licence})   # as if run online once
    cust = [{'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': 'a'}]} for i in range(10)]
    res = mix(cust, MixConfig(50, {'math': 100}), model='HuggingFaceTB/SmolLM2-360M-Instruct', batch_size=4)
    rows = {r['source']: r for r in res.report.rows}
    assert rows['math']['rows'] == 10 and rows['math']['licence'] == 'Apache-2.0'

def test_noncommercial_is_flagged_not_used():
    cat = verified_catalog('hub')
    assert cat.active('reasoning-factuality') == [] and 'CC-BY-NC' in cat.excluded['reasoning-factuality'][0]
    assert verified_catalog('hub', allow_noncommercial=True).active('reasoning-factuality')

def test_embedded_default_unchanged():
    cust = [{'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': 'a'}]} for i in range(64)]
    a, b = mix(cust, MixConfig(50), n_examples=128, seed=3), mix(cust, MixConfig(50), n_examples=128, seed=3, catalog=default_catalog())
    assert a.records == b.records

def test_decontamination_counts_per_source():
    q = mmlu_texts(ROOT / 'fixtures' / 'mmlu' / 'test')[:3]
    ix = eval_index(mmlu=ROOT / 'fixtures' / 'mmlu' / 'test', ifeval=ROOT / 'fixtures' / 'ifeval' / 'input_data.jsonl')
    leak = [{'messages': [{'role': 'user', 'content': 'Answer this: ' + t}, {'role': 'assistant', 'content': 'B'}]} for t in q]
    clean = [{'messages': [{'role': 'user', 'content': ' '.join(f'w{i}x{j}' for j in range(12))}, {'role': 'assistant', 'content': 'ok'}]} for i in range(9)]
    cat = Catalog(); cat.add(Source('math', records=leak + clean))
    held = [{'messages': [{'role': 'user', 'content': ' '.join(f'w1x{j}' for j in range(12))}, {'role': 'assistant', 'content': 'x'}]}]
    cust = clean[:4]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        res = mix(cust, MixConfig(50, {'math': 100}), n_examples=8, batch_size=4, catalog=cat, decontaminate=ix, heldout=held)
    rows = {r['source']: r for r in res.report.rows}
    assert rows['math']['decontaminated'] == 3 + 1 and rows['customer']['decontaminated'] == 0
    assert any('held-out' in n for n in res.report.notes) and any('decontaminated' in n for n in res.report.notes)

def test_byo_folder_validated(tmp_path):
    from forge_nb.data.validate import validate
    d = tmp_path / 'mine'; d.mkdir()
    (d / 'a.jsonl').write_text(''.join(json.dumps({'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': 'a'}]}) + '\n' for i in range(5)))
    src = Source('stem', 'json', data_files=str(d / '*.jsonl'))
    recs = src.load(None)
    assert len(recs) == 5 and validate(recs).ok if hasattr(validate(recs), 'ok') else True

@pytest.mark.hub
@pytest.mark.parametrize('i', range(len(HUB_SOURCES)), ids=IDS)
def test_hub_one_real_row(i):
    if not hub_reachable(): pytest.skip('hub not reachable or HF offline mode set (run with HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 -m hub)')
    import datasets
    s = HUB_SOURCES[i]
    row = next(iter(datasets.load_dataset(s.hf_id, s.config, split=s.split, streaming=True)))
    assert set(row) == set(s.schema), f'{s}: hub columns {sorted(row)} != card schema {sorted(s.schema)}'
