"""Benchmark the preparation stage against two fair baselines doing the same work on the same file, with the same output.

`prepare` (load -> transform -> sanitize -> validate -> filter -> exact dedup -> split -> save) runs on N MedReason-shaped rows
(default 33,000, with reserved prefixes, chat-template markers and ~1% exact copies mixed in) next to:

- `datasets`: the pipeline a competent user writes with Hugging Face `datasets`: `load_dataset('json')` -> batched `map` to
  build the chats -> batched `map` to sanitize -> batched `map` for the validation and quality reasons -> `filter` ->
  hash dedup over the key column -> seeded split with `select` -> `to_json` (a fresh cache folder per run, as a first run has);
- `loop`: plain Python: `json.loads` per line, `str.replace` for sanitizing, a `set` of keys for dedup, `json.dumps` per line.

Both baselines share the per-record Python functions below (the same rules as `prepare`: the default reserved prefixes and
tokens including the chat markers of the common model families, empty turns, the default quality thresholds, exact dedup on
lower-cased whitespace-collapsed text, the seeded 80/10/10 split). Before any timing, the kept records of all three
(per split, in order) are asserted identical. Timings are best of `--repeats`, interleaved (the machine is shared).
`floor_s` is Arrow's JSON reader on the input plus writing the bytes `prepare` wrote: no pipeline can do less. It is timed
warm in fresh processes of its own (best of `--repeats`), not interleaved: run right after the others it measured 2-5x slower
(their file writes still being flushed), which flattered `ratio_to_floor`.

Run by hand: `.venv/bin/python bench/bench_prep.py [--rows N] [--repeats K]`. The last printed line is one JSON object."""
import argparse, json, os, random, re, shutil, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false').items(): os.environ.setdefault(k, v)
import numpy as np, pyarrow as pa, pyarrow.json as pj
from forge_nb.core.embedded import domain_rows
from forge_nb.data.preparation import prepare
from forge_nb.data.transform import RESERVED_PREFIXES, reserved_tokens, parse_options

TOKENS = sorted(reserved_tokens(None), key=len, reverse=True)             # what prepare removes without a tokenizer
PREFIXES = sorted(RESERVED_PREFIXES, key=len, reverse=True)
PUNCT = {chr(c) for lo, hi in ((33, 47), (58, 64), (91, 96), (123, 126)) for c in range(lo, hi + 1)}
URL = re.compile(r'(?i)\b(?:https?://|www\.)\S+')

def make_rows(n, seed=0):
    "MedReason-shaped rows with some dirt: reserved prefixes / tokens / chat markers in ~5% of rows, ~1% exact copies."
    rows, r = domain_rows(n, seed=seed), random.Random(seed)
    for x in rows:
        u = r.random()
        if u < .03: x['question'] = r.choice(RESERVED_PREFIXES) + ' ' + x['question']
        elif u < .05: x['answer'] = x['answer'] + ' ' + r.choice(TOKENS)
    for i in r.sample(range(n), n // 100): rows[i] = dict(rows[r.randrange(n)], id_in_dataset=rows[i]['id_in_dataset'])
    return rows

# ------------------------------------------------------------------ the per-record rules, shared by both baselines
def chat_of(row) -> dict:
    "Question (+ options as `A. text` lines) -> user turn, answer -> assistant turn; `options` and `id` kept, `answer_letter` added."
    opts = row.get('options') or {}
    if isinstance(opts, str):   # MedReason's one-string options go under the question as they are
        user, opts = row['question'] + ('\n\n' + opts if opts.strip() else ''), parse_options(opts) or {}
    else: user = row['question'] + ('\n\n' + '\n'.join(f'{k}. {v}' for k, v in opts.items() if v is not None) if opts else '')
    rec = {'messages': [{'role': 'user', 'content': user}, {'role': 'assistant', 'content': row['answer']}]}
    rec.update({k: v for k, v in row.items() if k not in ('question', 'answer', 'reasoning')})
    letter = row['answer'] if row['answer'] in opts else next((k for k, v in opts.items() if v == row['answer']), None)
    if letter is not None: rec['answer_letter'] = letter
    return rec

def clean(s: str) -> str:
    "Remove reserved tokens (until none is left), then break reserved prefixes (`User:` -> `User :`)."
    while any(t in s for t in TOKENS):
        for t in TOKENS: s = s.replace(t, '')
    for p in PREFIXES: s = s.replace(p, p[:-1] + ' :')
    return s

def reason_of(rec) -> str:
    "The first validation or quality rule the record breaks ('' if none)."
    turns = rec['messages']
    if any(not (m['content'] or '').strip() for m in turns): return 'empty_turn'
    if turns[-1]['role'] != 'assistant': return 'no_assistant_end'
    text = '\n'.join(m['content'] for m in turns); L = len(text)
    if L < 1: return 'too_short'
    if sum(c in PUNCT for c in text) / max(L, 1) > 0.5: return 'symbols'
    if ('://' in text or 'www.' in text) and (L - len(URL.sub('', text))) / max(L, 1) > 0.5: return 'urls'
    w = text.lower().split()
    if len(w) >= 50 and len(set(w)) / len(w) < 0.1: return 'repetitive'
    return ''

def dedup_key(rec) -> str: return ' '.join('\n'.join(m['content'] for m in rec['messages']).lower().split())

def split_of(n, seed=0, ratios=(0.8, 0.1, 0.1)) -> dict:
    "The seeded 80/10/10 split of `n` kept rows, in file order (as `prepare`'s `split_indices`)."
    g = np.arange(n)[np.random.default_rng(seed).permutation(n)]
    a = int(round(n * ratios[0])); b = min(a + int(round(n * ratios[1])), n)
    return {k: np.sort(p) for k, p in zip(('train', 'validation', 'test'), (g[:a], g[a:b], g[b:]))}

# ------------------------------------------------------------------ baseline (b): plain Python
def loop_pipeline(src, out):
    out.mkdir(parents=True, exist_ok=True)
    kept, rejects, seen = [], [], set()
    with open(src, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip(): continue
            rec = chat_of(json.loads(line))
            for m in rec['messages']: m['content'] = clean(m['content'])
            why = reason_of(rec)
            if not why:
                k = dedup_key(rec)
                if k in seen: why = 'duplicate'
                else: seen.add(k)
            if why: rejects.append({'reason': why, 'line': n, 'record': rec})
            else: kept.append(rec)
    for k, idx in split_of(len(kept)).items():
        with open(out/f'{k}.jsonl', 'w', encoding='utf-8') as f: f.writelines(json.dumps(kept[i], ensure_ascii=False) + '\n' for i in idx)
    with open(out/'rejects.jsonl', 'w', encoding='utf-8') as f: f.writelines(json.dumps(r, ensure_ascii=False) + '\n' for r in rejects)

# ------------------------------------------------------------------ baseline (a): Hugging Face datasets
def datasets_pipeline(src, out, cache):
    import datasets
    datasets.disable_progress_bars(); datasets.logging.set_verbosity_error()
    out.mkdir(parents=True, exist_ok=True)
    ds = datasets.load_dataset('json', data_files=str(src), split='train', cache_dir=str(cache))
    def to_chat(b):
        rows = [dict(zip(b, v)) for v in zip(*b.values())]
        recs = [chat_of(r) for r in rows]
        return {'messages': [r['messages'] for r in recs], 'answer_letter': [r.get('answer_letter') for r in recs]}
    ds = ds.map(to_chat, batched=True, remove_columns=['question', 'answer', 'reasoning'])
    ds = ds.map(lambda b: {'messages': [[{'role': m['role'], 'content': clean(m['content'])} for m in ms] for ms in b['messages']]}, batched=True)
    ds = ds.map(lambda b: {'reason': [reason_of({'messages': ms}) for ms in b['messages']],
                           'key': [dedup_key({'messages': ms}) for ms in b['messages']]}, batched=True)
    good = ds.filter(lambda b: [r == '' for r in b['reason']], batched=True)
    seen, keep = set(), []
    for i, k in enumerate(good['key']):
        if k not in seen: seen.add(k); keep.append(i)
    kept = good.select(keep).remove_columns(['reason', 'key'])
    for k, idx in split_of(len(kept)).items(): kept.select(idx).to_json(str(out/f'{k}.jsonl'), lines=True, force_ascii=False)
    dup = sorted(set(range(len(good))) - set(keep))
    bad = ds.filter(lambda b: [r != '' for r in b['reason']], batched=True)
    datasets.concatenate_datasets([bad, good.select(dup).map(lambda b: {'reason': ['duplicate'] * len(b['reason'])}, batched=True)]) \
        .remove_columns(['key']).to_json(str(out/'rejects.jsonl'), lines=True, force_ascii=False)

def ours(src, out): return prepare(src, out, on_error='reject')

def floor(src, out, blobs):
    "Arrow's JSON reader on the input plus writing the bytes prepare wrote."
    out.mkdir(parents=True, exist_ok=True)
    pj.read_json(str(src))
    for name, b in blobs.items(): (out/name).write_bytes(b)

FLOOR = """import sys, time, pathlib
sys.path.insert(0, sys.argv[1]); from bench_prep import floor
src, ref, out = map(pathlib.Path, sys.argv[2:]); blobs = {p.name: p.read_bytes() for p in ref.iterdir() if p.is_file()}
floor(src, out, blobs)   # warm: Arrow's thread pool and allocator, as in the process that runs prepare
t = time.perf_counter(); floor(src, out, blobs); print(time.perf_counter() - t)"""

def floor_fresh(src, ref, out) -> float:
    "`floor` timed inside a fresh Python process, its second run (imports, reading the reference bytes and a first run untimed)."
    import subprocess
    r = subprocess.run([sys.executable, '-c', FLOOR, str(Path(__file__).parent), str(src), str(ref), str(out)], capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return float(r.stdout)

def kept_records(out):
    "Kept records per split, parsed, without null fields (`to_json` writes a missing `answer_letter` as null, prepare leaves it out)."
    drop = lambda r: {k: v for k, v in r.items() if v is not None}
    return {k: [drop(json.loads(l)) for l in open(out/f'{k}.jsonl', encoding='utf-8') if l.strip()] for k in ('train', 'validation', 'test')}

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--rows', type=int, default=33_000); ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench_prep_'))
    src = tmp/'medreason.jsonl'
    src.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in make_rows(args.rows)), encoding='utf-8')
    # the same output before any timing: kept records per split, in order
    res = ours(src, tmp/'o_check'); loop_pipeline(src, tmp/'l_check'); datasets_pipeline(src, tmp/'d_check', tmp/'c_check')
    want = kept_records(tmp/'o_check')
    identical = want == kept_records(tmp/'l_check') == kept_records(tmp/'d_check')
    assert identical, 'the three pipelines kept different records'
    bytes_identical = all((tmp/'o_check'/f).read_bytes() == (tmp/'l_check'/f).read_bytes() for f in ('train.jsonl', 'validation.jsonl', 'test.jsonl'))
    nrej = lambda d: sum(1 for _ in open(d/'rejects.jsonl'))
    assert nrej(tmp/'o_check') == nrej(tmp/'l_check') == nrej(tmp/'d_check') == res.summary['rejected_total']
    T = {k: [] for k in ('ours', 'datasets', 'loop', 'floor')}
    for i in range(args.repeats):   # interleaved, so all see the same machine load
        for k, f in (('ours', lambda: ours(src, tmp/f'o{i}')), ('loop', lambda: loop_pipeline(src, tmp/f'l{i}')), ('datasets', lambda: datasets_pipeline(src, tmp/f'd{i}', tmp/f'c{i}'))):
            t = time.perf_counter(); f(); T[k].append(time.perf_counter() - t)
        for d in tmp.glob(f'*{i}'): shutil.rmtree(d, ignore_errors=True)
    time.sleep(2)                     # let the runs' writes settle before the floor
    T['floor'] = [floor_fresh(src, tmp/'o_check', tmp/f'f{i}') for i in range(args.repeats)]
    s = res.summary
    print(f"rows {s['read']}: kept {s['kept']}, rejected {s['rejected']}, sanitized {s['sanitized']}, balanced {s['balanced']}")
    print({k: [round(x, 3) for x in v] for k, v in T.items()}, f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    shutil.rmtree(tmp, ignore_errors=True)
    b = {k: min(v) for k, v in T.items()}   # best of N: the least disturbed run on a shared machine
    print(json.dumps({'bench': 'prep', 'rows': args.rows, 'ours_s': round(b['ours'], 4), 'datasets_s': round(b['datasets'], 4),
                      'loop_s': round(b['loop'], 4), 'ratio_vs_datasets': round(b['datasets'] / b['ours'], 2),
                      'ratio_vs_loop': round(b['loop'] / b['ours'], 2), 'identical': identical, 'bytes_identical_vs_loop': bytes_identical,
                      'floor_s': round(b['floor'], 4), 'ratio_to_floor': round(b['ours'] / b['floor'], 2),
                      'baselines': {'datasets': f'datasets {__import__("datasets").__version__}: load_dataset(json) -> map -> map -> map -> filter -> set dedup -> select -> to_json (num_proc=1, fresh cache)',
                                    'loop': 'json.loads + str.replace + set + json.dumps per record'},
                      'equal': 'kept records per split, in order (parsed JSON, null fields dropped); rejected counts', 'repeats': args.repeats}))

if __name__ == '__main__': main()
