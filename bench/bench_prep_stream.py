"""Benchmark streaming preparation: N MedReason-shaped rows (default 10,000,000; ~270 bytes each) generated once into a JSONL file
outside the repository (reused when present), prepared with `prepare(..., stream=True)` in a child process whose peak RSS is
measured. The in-memory path is timed on the first `--compare` rows of the same file for the per-row throughput ratio.

    .venv/bin/python bench/bench_prep_stream.py                 # 10M rows (generation ~3 min, the file ~2.7 GB)
    .venv/bin/python bench/bench_prep_stream.py --rows 1000000  # a shorter run

The last printed line is one JSON object: rows, seconds, rows_per_s, peak_rss_mb, read, kept, rejected, (and the in-memory
comparison: memory_rows, memory_rows_per_s, ratio_memory_to_stream)."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false').items(): os.environ.setdefault(k, v)

def generate(path: Path, n: int, chunk=100_000):
    "MedReason-shaped rows (`domain_rows`, one seed per chunk; a case number makes each question distinct, as in real data), ~1% exact copies."
    from forge_nb.core.embedded import domain_rows
    import random
    tmp = path.with_suffix('.partial')
    with open(tmp, 'w', encoding='utf-8') as f:
        for s, start in enumerate(range(0, n, chunk)):
            rows, r = domain_rows(min(chunk, n - start), seed=s), random.Random(s)
            for i, x in enumerate(rows): x['question'] = f"{x['question']} (case {start + i})"
            for i in r.sample(range(len(rows)), len(rows) // 100): rows[i] = dict(rows[r.randrange(len(rows))], id_in_dataset=rows[i]['id_in_dataset'])
            f.write(''.join(json.dumps(x, ensure_ascii=False) + '\n' for x in rows))
    os.replace(tmp, path)

def child(src, out, memory_rows):
    "Run in a fresh process: the streaming prepare, then report its time, the accounting and this process's peak RSS."
    from forge_nb.data.preparation import prepare
    t = time.perf_counter(); res = prepare(src, out, stream=True, on_error='reject'); dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = res.summary
    print(json.dumps(dict(seconds=round(dt, 2), peak_rss_mb=round(rss, 1), read=s['read'], kept=s['kept_total'], rejected=s['rejected_total'],
                          rejected_by=s['rejected'], balanced=s['balanced'])), flush=True)

def memory_child(src, out, n):
    "The in-memory path on the first `n` rows (its own process, so its memory does not count against the stream's)."
    from itertools import islice
    from forge_nb.data.preparation import prepare
    part = Path(out)/'head.jsonl'; part.parent.mkdir(parents=True, exist_ok=True)
    with open(src, 'rb') as f, open(part, 'wb') as g: g.writelines(islice(f, n))
    best = []
    for i in range(2):
        t = time.perf_counter(); prepare(part, Path(out)/f'm{i}', on_error='reject'); best.append(time.perf_counter() - t)
    t = time.perf_counter(); prepare(part, Path(out)/'s', on_error='reject', stream=True); st = time.perf_counter() - t
    print(json.dumps(dict(memory_s=round(min(best), 3), stream_same_rows_s=round(st, 3))), flush=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rows', type=int, default=10_000_000); ap.add_argument('--compare', type=int, default=500_000)
    ap.add_argument('--data-dir', default=os.path.join(tempfile.gettempdir(), 'forge_nb_bench_stream'))
    ap.add_argument('--child', nargs=2); ap.add_argument('--memory-child', nargs=3)
    a = ap.parse_args()
    if a.child: return child(*a.child, None)
    if a.memory_child: return memory_child(a.memory_child[0], a.memory_child[1], int(a.memory_child[2]))
    d = Path(a.data_dir); d.mkdir(parents=True, exist_ok=True)
    src = d/f'medreason_v2_{a.rows}.jsonl'
    if not src.exists():
        t = time.perf_counter(); generate(src, a.rows); print(f'generated {a.rows} rows ({src.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s', flush=True)
    out = Path(tempfile.mkdtemp(prefix='bench_stream_out_', dir=d))
    run = lambda *args: json.loads(subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    r = run('--child', str(src), str(out/'stream'))
    m = run('--memory-child', str(src), str(out/'memory'), str(min(a.compare, a.rows)))
    subprocess.run(['rm', '-rf', str(out)])
    n = min(a.compare, a.rows)
    res = dict(bench='prep_stream', rows=a.rows, seconds=r['seconds'], rows_per_s=round(a.rows / r['seconds']), peak_rss_mb=r['peak_rss_mb'],
               read=r['read'], kept=r['kept'], rejected=r['rejected'], balanced=r['balanced'], rejected_by=r['rejected_by'],
               memory_rows=n, memory_rows_per_s=round(n / m['memory_s']), stream_same_rows_per_s=round(n / m['stream_same_rows_s']),
               ratio_memory_to_stream=round((n / m['memory_s']) / (a.rows / r['seconds']), 2), load_average=round(os.getloadavg()[0], 1), cpus=os.cpu_count())
    print(json.dumps(res))

if __name__ == '__main__': main()
