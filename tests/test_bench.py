"""The benchmarks in `bench/` stay runnable and keep their equality checks: each runs at smoke size and its last line (one
JSON object) must say that forge_nb and the baseline did the same work. Timings are not asserted (they belong to runs by
hand on a quiet machine); only the figures that say "equal"."""
import json, math, os, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / 'bench'

def run_bench(name, *args) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
               MLFLOW_DISABLE_TELEMETRY='true')
    r = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def test_bench_prep_baselines_keep_the_same_records():
    out = run_bench('bench_prep.py', '--rows', '600', '--repeats', '1')
    assert out['rows'] == 600 and out['identical'] is True and out['bytes_identical_vs_loop'] is True
    assert all(out[k] > 0 for k in ('ours_s', 'datasets_s', 'loop_s', 'floor_s'))

def test_bench_eval_agrees_with_lm_eval_item_by_item():
    out = run_bench('bench_eval.py', '--model', 'tiny', '--per-subject', '3', '--subjects', '3', '--repeats', '1')
    assert out['items'] == 9 and out['agreement'] == 1.0 and out['equal']['prompts_identical'] == 9
    assert out['max_abs_loglik_diff'] < 1e-3

def test_bench_train_three_setups_compute_the_same_loss():
    out = run_bench('bench_train.py', '--steps', '2', '--repeats', '1', '--records', '64')   # asserts the first-batch loss inside
    assert out['steps'] == 2 and min(out['ours_tok_s'], out['trl_tok_s'], out['dynamic_tok_s']) > 0
    # same samples in the same order, same optimizer and schedule: the engine and the HF Trainer with padding train alike
    assert math.isclose(out['loss_ours'], out['loss_dynamic'], rel_tol=1e-3), (out['loss_ours'], out['loss_dynamic'])
    assert 0 < out['peak_rss_mb_bf16'] and 0 < out['peak_rss_mb_fp32']
