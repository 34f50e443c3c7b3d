"""Benchmark the preparation stage: 33,000 MedReason-shaped rows end to end (load -> transform -> sanitize -> validate ->
filter -> split -> save) against the reference walkthrough's row-by-row loop (pandas iterrows + re.sub per reserved token +
json.dumps per row) on the same file, in the same run. Run by hand: `.venv/bin/python bench/bench_prep.py [--rows N]`.
The last printed line is one JSON object."""
import argparse, json, os, random, re, shutil, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false').items(): os.environ.setdefault(k, v)
import pandas as pd
from forge_nb.core.embedded import domain_rows, tiny_model_path
from forge_nb.data.preparation import prepare
from forge_nb.data.transform import RESERVED_PREFIXES, RESERVED_TOKENS

def make_rows(n, seed=0):
    "MedReason-shaped rows with some dirt: reserved prefixes/tokens in ~5% of rows, ~1% exact copies."
    rows, r = domain_rows(n, seed=seed), random.Random(seed)
    for x in rows:
        u = r.random()
        if u < .03: x['question'] = r.choice(RESERVED_PREFIXES) + ' ' + x['question']
        elif u < .05: x['answer'] = x['answer'] + ' ' + r.choice(RESERVED_TOKENS + ['<|im_end|>'])
    for i in r.sample(range(n), n // 100): rows[i] = dict(rows[r.randrange(n)], id=rows[i]['id'])
    return rows

def baseline(path, out, tokens):
    "The walkthrough's approach: one Python iteration per row, one re.sub per reserved string and field, one json.dumps per row."
    df = pd.read_json(path, lines=True)
    lines = []
    for _, row in df.iterrows():
        q, a = str(row['question']), str(row['answer'])
        opts = row.get('options')
        if isinstance(opts, dict): q = q + '\n\n' + '\n'.join(f'{k}. {v}' for k, v in opts.items() if v is not None)
        for s in RESERVED_PREFIXES: q = re.sub(re.escape(s), s[:-1] + ' :', q); a = re.sub(re.escape(s), s[:-1] + ' :', a)
        for s in tokens: q = re.sub(re.escape(s), '', q); a = re.sub(re.escape(s), '', a)
        lines.append(json.dumps({'messages': [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}], 'id': row['id']}))
    Path(out).write_text('\n'.join(lines) + '\n')
    return len(lines)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--rows', type=int, default=33_000); ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench_prep_'))
    src = tmp/'medreason.jsonl'
    src.write_text(''.join(json.dumps(r) + '\n' for r in make_rows(args.rows)))
    small = tmp/'warm.jsonl'; small.write_text(''.join(json.dumps(r) + '\n' for r in make_rows(500, seed=1)))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    specials = RESERVED_TOKENS + ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>']
    prepare(small, tmp/'warm_out', on_error='reject'); baseline(small, tmp/'warm_base.jsonl', specials)   # warm-up (imports, kernels)
    ours, base, ours_cpu, base_cpu = [], [], [], []
    for i in range(args.repeats):   # interleaved, so both see the same machine load
        c, t = time.process_time(), time.perf_counter(); res = prepare(src, tmp/f'out{i}', on_error='reject')
        ours.append(time.perf_counter() - t); ours_cpu.append(time.process_time() - c)
        c, t = time.process_time(), time.perf_counter(); nb = baseline(src, tmp/f'base{i}.jsonl', specials)
        base.append(time.perf_counter() - t); base_cpu.append(time.process_time() - c)
    s = res.summary
    print(f"rows {s['read']}: kept {s['kept']}, rejected {s['rejected']}, sanitized {s['sanitized']}, balanced {s['balanced']}")
    print('ours per step (last run):', res.timings)
    print(f"ours {[round(x, 3) for x in ours]} s, baseline {[round(x, 3) for x in base]} s (baseline wrote {nb} rows, no dedup/validation/split)")
    print(f"CPU time (all threads), best of {args.repeats}: ours {min(ours_cpu):.3f} s, baseline {min(base_cpu):.3f} s, "
          f"ratio {min(base_cpu) / min(ours_cpu):.1f}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    t = time.perf_counter(); rt = prepare(src, tmp/'out_tok', tokenizer=tok, max_length=512, on_error='reject'); tt = time.perf_counter() - t
    print(f"with the tiny tokenizer (special tokens + real-token lengths, max_length=512): {tt:.3f} s; tokens {rt.summary['tokens']}")
    shutil.rmtree(tmp, ignore_errors=True)
    o, b = min(ours), min(base)   # best of N for both: the least disturbed run on a shared machine
    print(json.dumps({'bench': 'prep', 'rows': args.rows, 'ours_s': round(o, 4), 'baseline_s': round(b, 4), 'ratio': round(b / o, 1)}))

if __name__ == '__main__': main()
