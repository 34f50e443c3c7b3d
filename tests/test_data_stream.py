"Streaming preparation (issue 16): batches, exact dedup across the stream, per-record hash splits, the same accounting, atomic outputs."
import functools, json
from collections import Counter
from pathlib import Path
import pytest
import forge_nb.data.preparation as prep_mod
from forge_nb.core.embedded import domain_rows, tiny_model_path
from forge_nb.core.records import read_records, write_records, INCOMPLETE, IncompleteOutput
from forge_nb.data.stream import iter_tables
from forge_nb.data.preparation import prepare
from test_preparation import bad_input_set

@pytest.fixture
def small_batches(monkeypatch):
    "Batches of ~400 bytes / 7 rows, so that every test crosses many batch boundaries."
    monkeypatch.setattr(prep_mod, 'iter_tables', functools.partial(iter_tables, block_bytes=400, batch_rows=7))

def kept(res): return Counter(json.dumps(r, sort_keys=True) for k in ('train', 'validation', 'test') for r in res.records(k))

def test_stream_matches_in_memory_on_bad_input(tmp_path, small_batches):
    (tmp_path/'in').mkdir(); src = bad_input_set(tmp_path/'in')
    from forge_nb.core.models import load_tokenizer
    tok = load_tokenizer(tiny_model_path())
    mem = prepare(src, tmp_path/'mem', tokenizer=tok, max_length=128, on_error='reject')
    st = prepare(src, tmp_path/'st', tokenizer=tok, max_length=128, on_error='reject', stream=True)
    for k in ('read', 'rejected', 'kept_total', 'rejected_total', 'sanitized', 'balanced'): assert st.summary[k] == mem.summary[k], k
    assert kept(st) == kept(mem)
    where = lambda r: sorted((x['reason'], Path(x['file']).name, x['line'], x.get('field'), x['detail']) for x in read_records(r.paths['rejects']))
    assert where(st) == where(mem)                      # the same reasons at the same file:line, duplicates named by their first copy
    assert st.summary['stream'] and st.summary['tokens']['> 128'] == 1

def test_exact_dedup_across_batches_and_files(tmp_path, small_batches):
    rows = domain_rows(200, seed=4)
    write_records(rows, tmp_path/'a.jsonl')
    copies = [dict(rows[i], id_in_dataset=10**9 + i, question=rows[i]['question'].upper() + '  ') for i in (0, 57, 199)]
    write_records(domain_rows(50, seed=5) + copies, tmp_path/'b.jsonl')
    st = prepare([tmp_path/'a.jsonl', tmp_path/'b.jsonl'], tmp_path/'st', stream=True, on_error='reject')
    mem = prepare([tmp_path/'a.jsonl', tmp_path/'b.jsonl'], tmp_path/'mem', on_error='reject')
    assert st.summary['rejected'] == mem.summary['rejected'] and kept(st) == kept(mem)
    dups = {r['record']['id_in_dataset'] - 10**9: r['detail'] for r in read_records(st.paths['rejects']) if r['record'].get('id_in_dataset', 0) >= 10**9}
    assert dups == {0: f"duplicate of {tmp_path/'a.jsonl'}:1", 57: f"duplicate of {tmp_path/'a.jsonl'}:58",
                    199: f"duplicate of {tmp_path/'a.jsonl'}:200"}

def test_split_is_per_record_and_deterministic(tmp_path, monkeypatch):
    rows = domain_rows(600, seed=6); write_records(rows, tmp_path/'x.jsonl')
    where = lambda r: {x['id_in_dataset']: k for k in ('train', 'validation', 'test') for x in r.records(k)}
    a = prepare(tmp_path/'x.jsonl', tmp_path/'a', stream=True)
    monkeypatch.setattr(prep_mod, 'iter_tables', functools.partial(iter_tables, block_bytes=1000))
    b = prepare(tmp_path/'x.jsonl', tmp_path/'b', stream=True)
    c = prepare(tmp_path/'x.jsonl', tmp_path/'c', stream=True, seed=1)
    assert where(a) == where(b) != where(c)             # the same record lands in the same split whatever the batches; the seed matters
    n = a.summary['kept']
    assert abs(n['train'] / a.summary['kept_total'] - 0.8) < 0.06 and n['validation'] > 0 and n['test'] > 0
    assert Path(a.paths['train']).read_bytes() == Path(b.paths['train']).read_bytes()

def test_outputs_appear_whole_or_not_at_all(tmp_path, small_batches):
    rows = domain_rows(100, seed=7); write_records(rows, tmp_path/'x.jsonl')
    with open(tmp_path/'x.jsonl', 'a') as f: f.write('{"question": "broken", \n')   # the last batch breaks a raise-mode run
    with pytest.raises(Exception, match=r'x\.jsonl:101: bad_json'): prepare(tmp_path/'x.jsonl', tmp_path/'o', stream=True)
    # no split, no rejects, no temporary file: only the flag that tells a reader this preparation did not finish
    assert [p.name for p in (tmp_path/'o').iterdir()] == [INCOMPLETE]
    with pytest.raises(IncompleteOutput, match='prepare did not finish'): read_records(tmp_path/'o'/'train.jsonl')
    with pytest.raises(ValueError, match='min_rows'): prepare(tmp_path/'x.jsonl', tmp_path/'o', stream=True, on_error='reject', min_rows=10**6)
    assert [p.name for p in (tmp_path/'o').iterdir()] == [INCOMPLETE]
    r = prepare(tmp_path/'x.jsonl', tmp_path/'o', stream=True, on_error='reject')
    assert sorted(p.name for p in (tmp_path/'o').iterdir()) == ['rejects.jsonl', 'summary.json', 'test.jsonl', 'train.jsonl', 'validation.jsonl']
    assert r.summary['read'] == 101 and r.summary['rejected'] == {'bad_json': 1} and r.balanced

def test_stream_sources_and_formats(tmp_path, small_batches):
    import pyarrow as pa, pyarrow.parquet as pq
    rows = domain_rows(40, seed=8)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path/'x.parquet', row_group_size=9)
    p = prepare(tmp_path/'x.parquet', tmp_path/'p', stream=True, format='prompt_completion')
    assert p.summary['read'] == 40 and p.balanced and 'prompt' in p.records()[0]
    m = prepare(rows, tmp_path/'m', stream=True, format='text')       # data in memory is cut into batches too
    assert m.summary['kept_total'] == 40 and set(m.records()[0]) >= {'text', 'id_in_dataset'}
    (tmp_path/'e.jsonl').write_text('\n\n')
    e = prepare([tmp_path/'e.jsonl', tmp_path/'x.parquet'], tmp_path/'e', stream=True, on_error='reject')
    assert e.summary['rejected'] == {'empty_file': 1} and e.summary['read'] == 41

def test_stream_auto(tmp_path, monkeypatch):
    write_records(domain_rows(30), tmp_path/'x.jsonl')
    assert 'stream' not in prepare(tmp_path/'x.jsonl', tmp_path/'a', stream='auto').summary
    monkeypatch.setattr(prep_mod, 'STREAM_ABOVE', 100)
    assert prepare(tmp_path/'x.jsonl', tmp_path/'b', stream='auto').summary['stream']
