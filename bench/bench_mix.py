"""Mixer benchmark: index speed, peak memory on 1M- vs 10M-row virtual sources, and composition error vs
`datasets.interleave_datasets` with the same probabilities. Run by hand: `.venv/bin/python bench/bench_mix.py`.
The last printed line is one JSON object."""
import json, os, subprocess, sys, time
os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np

N_SPEED, N_RSS, B, N_CMP = 4_000_000, 2_000_000, 32, 32 * 400

def shares():
    from forge_nb.mixing import MixConfig
    sh = MixConfig().shares()  # the shipped default: 50% customer + 11 categories
    return list(sh), [sh[k] for k in sh]

def rss_child(rows: int) -> float:
    "Peak RSS (MB) of a fresh process that assigns N_RSS positions over sources of `rows` rows each."
    code = f"""
import numpy as np, sys
sys.path.insert(0, {repr(os.getcwd())})
def hwm():  # peak RSS of this process image (VmHWM; ru_maxrss would include the parent's memory from before exec)
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
from forge_nb.mixing.mixer import assign
from forge_nb.mixing import MixConfig
sh = MixConfig().shares()
base = hwm()
m = assign(list(sh), list(sh.values()), [{rows}] * len(sh), {N_RSS}, batch_size={B}, seed=0)
assert len(m) == {N_RSS} and int(m.row.max()) < {rows}
print(base, hwm())
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    base, peak = map(float, out.stdout.strip().splitlines()[-1].split())
    return base, peak

def offs(src, names, w, n, b):
    "Worst epoch rows off (vs the whole-row Hamilton target) and worst full-batch rows off (vs share × batch size)."
    from forge_nb.mixing.mixer import apportion
    S = len(names); src = np.asarray(src, np.int64)
    T = apportion(w, n); cnt = np.bincount(src, minlength=S)
    nb = n // b
    C = np.bincount((np.arange(nb * b) // b) * S + src[:nb * b], minlength=nb * S).reshape(nb, S)
    return int(np.abs(cnt - T).max()), float(np.abs(C - np.asarray(w) * b).max())

def main():
    from forge_nb.mixing.mixer import assign
    names, w = shares()
    sizes = [10_000_000] * len(names)
    assign(names, w, sizes, 100_000, batch_size=B)  # warm-up
    ts = []
    for _ in range(3):
        t = time.perf_counter(); m = assign(names, w, sizes, N_SPEED, batch_size=B, seed=1); ts.append(time.perf_counter() - t)
    aps = N_SPEED / min(ts)
    print(f'assign: {N_SPEED:,} positions over {len(names)} sources in {min(ts):.2f} s (best of 3) = {aps:,.0f} assignments/s')
    (b1, r1), (b10, r10) = rss_child(1_000_000), rss_child(10_000_000)
    print(f'peak RSS, {N_RSS:,} positions: 1M-row sources {r1:.0f} MB, 10M-row sources {r10:.0f} MB '
          f'(after imports: {b1:.0f} / {b10:.0f} MB; a materialised 10M-row permutation alone would add 80 MB per source)')
    # composition vs datasets.interleave_datasets with the same probabilities
    ours = assign(names, w, [N_CMP] * len(names), N_CMP, batch_size=B, seed=0)
    e_ours, b_ours = offs(ours.source, names, w, N_CMP, B)
    import datasets
    datasets.disable_progress_bars()
    dss = [datasets.Dataset.from_dict({'s': np.full(N_CMP, i, np.int64)}) for i in range(len(names))]
    worst_e = worst_b = 0
    for seed in range(5):
        il = datasets.interleave_datasets(dss, probabilities=w, seed=seed, stopping_strategy='first_exhausted')
        src = np.asarray(il.select(range(N_CMP))['s'])
        e, b = offs(src, names, w, N_CMP, B); worst_e, worst_b = max(worst_e, e), max(worst_b, b)
    print(f'composition over {N_CMP:,} examples in batches of {B} (worst over {len(names)} sources):')
    print(f'  ours:                 epoch {e_ours} rows off, worst batch {b_ours:.2f} rows off')
    print(f'  interleave_datasets:  epoch {worst_e} rows off, worst batch {worst_b:.2f} rows off (worst of 5 seeds)')
    print(json.dumps({'bench': 'mix', 'assign_per_s': round(aps), 'peak_rss_mb_1m': round(r1, 1), 'peak_rss_mb_10m': round(r10, 1),
                      'epoch_rows_off': e_ours, 'batch_rows_off': round(b_ours, 3), 'interleave_epoch_rows_off': worst_e,
                      'interleave_batch_rows_off': round(worst_b, 3)}))

if __name__ == '__main__': main()
