"""Benchmark (run by hand): a 100k-row general pool from local, hub-shaped fixtures of realistic size (>= 1 GB Parquet),
seeded streaming samples per category, decontaminated against MMLU test + IFEval prompts. Last line: one JSON object.

    .venv/bin/python bench/bench_catalog.py [--rows 100000] [--dir /tmp/forge_nb_bench_catalog]

The fixtures are generated once (in a child process, so their memory does not count) under --dir, outside the repo:
synthetic rows in each verified source's card schema, uncompressed Parquet in row groups of 1,000.
Goals: peak_rss_mb <= 1000; bytes_read <= 2x the bytes of the rows kept."""
import argparse, json, os, resource, subprocess, sys, time
from dataclasses import replace
from pathlib import Path

def _rchar() -> int:
    for l in open('/proc/self/io'):
        if l.startswith('rchar:'): return int(l.split()[1])
    return 0

def generate(root: Path, total_mb: int):
    import pyarrow as pa, pyarrow.parquet as pq
    from forge_nb.mixing.sources import SPECS, arrow_schema, synthetic_rows, write_fixture, _shard_paths
    specs = [s for s in SPECS if s.get('format', 'parquet') == 'parquet']
    splits = {}
    for s in specs: splits.setdefault((s['hf_id'], s.get('config'), s['split']), s)
    per = total_mb * 2**20 // len(splits)
    for (hf, cfg, sp), s in splits.items():
        d = write_fixture(hf, root, n=8)   # README + layout; shards overwritten below
        same = [x for x in specs if (x['hf_id'], x.get('config'), x['split']) == (hf, cfg, sp)]
        flt = {k: [x['filter'][k] for x in same if k in (x.get('filter') or {})] for x in same for k in (x.get('filter') or {})}
        base = pa.Table.from_pylist(synthetic_rows(dict(s, filter=flt, schema=s['schema']), 4000, seed=7), arrow_schema(s['schema']))
        reps = max(1, -(-per // base.nbytes))
        t = pa.concat_tables([base] * reps)
        paths = _shard_paths(s['files'], 4, 'parquet')
        for f in d.glob(s['files']): f.unlink()
        for i, p in enumerate(paths):
            pq.write_table(t.slice(i * len(t) // 4, len(t) // 4), d / p, row_group_size=1000, compression='none', use_dictionary=False)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rows', type=int, default=100_000); ap.add_argument('--dir', default='/tmp/forge_nb_bench_catalog')
    ap.add_argument('--gb', type=float, default=1.05); ap.add_argument('--generate', action='store_true')
    a = ap.parse_args(); root = Path(a.dir) / 'fixtures'
    if a.generate: return generate(root, int(a.gb * 1024))
    if not (root / 'DONE').exists():
        subprocess.run([sys.executable, __file__, '--generate', '--dir', a.dir, '--gb', str(a.gb)], check=True)
        (root / 'DONE').write_text('ok')
    os.environ.update(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', FORGE_NB_CATALOG_CACHE=str(Path(a.dir) / f'cache-{time.time_ns()}'),
                      HF_DATASETS_CACHE=str(Path(a.dir) / 'hf'))
    from forge_nb.mixing.catalog import HUB_SOURCES
    from forge_nb.mixing.samples import sample
    from forge_nb.mixing.decontam import eval_index, decontaminate
    fix_bytes = sum(f.stat().st_size for f in root.rglob('*.parquet'))
    srcs = [replace(s, hf_id=str(root / s.hf_id.replace('/', '__'))) for s in HUB_SOURCES if s.format == 'parquet' and s.commercial]
    mmlu = Path('/work/shared/data/mmlu/test'); mmlu = mmlu if mmlu.exists() else Path(__file__).parents[1] / 'fixtures/mmlu/test'
    ifev = Path('/work/shared/data/ifeval/input_data.jsonl')
    ifev = ifev if ifev.exists() else Path(__file__).parents[1] / 'fixtures/ifeval/input_data.jsonl'
    t0 = time.time(); ix = eval_index(mmlu=mmlu, ifeval=ifev); t_ix = time.time() - t0
    r0, t0, kept, removed, kept_bytes = _rchar(), time.time(), 0, 0, 0.0
    per = [a.rows // len(srcs) + (i < a.rows % len(srcs)) for i in range(len(srcs))]
    for s, k in zip(srcs, per):
        recs = sample(s, k, seed=0, buffer_size=1000)
        recs, rm = decontaminate(recs, ix); kept += len(recs); removed += rm
        files = list(Path(s.hf_id).glob(s.files)); rows = sum(__import__('pyarrow.parquet', fromlist=['x']).read_metadata(f).num_rows for f in files)
        kept_bytes += sum(f.stat().st_size for f in files) * len(recs) / rows
    secs = time.time() - t0; bytes_read = _rchar() - r0
    print(json.dumps(dict(rows=kept, seconds=round(secs, 1), rows_per_s=round(kept / secs), peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          bytes_read=bytes_read, decontaminated=removed, kept_bytes=round(kept_bytes), read_ratio=round(bytes_read / kept_bytes, 2),
                          fixture_gb=round(fix_bytes / 2**30, 2), sources=len(srcs), eval_items=len(ix), index_seconds=round(t_ix, 1))))

if __name__ == '__main__': main()
