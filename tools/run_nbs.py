"""Run lesson notebooks and save their outputs (the committed lessons show tables and plots on GitHub and the docs).

    python tools/run_nbs.py                  # every notebook under nbs/
    python tools/run_nbs.py nbs/00f_jobs.ipynb nbs/02*.ipynb
    python tools/run_nbs.py --fast           # skip `slow` cells too (their outputs stay empty)

Cells flagged `gpu`, `aws`, `browser` or `notest` are skipped, as in the tests (`slow` cells run); then the
notebooks are cleaned with nbdev-clean. A notebook that fails keeps its previous outputs and the run exits 1.
"""
import os, subprocess, sys, time
from pathlib import Path
from nbdev.config import get_config
from nbdev.test import test_nb

ROOT = Path(__file__).resolve().parents[1]
for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true',
                 TOKENIZERS_PARALLELISM='false', TRANSFORMERS_VERBOSITY='error', PYTHONHASHSEED='0').items():
    os.environ.setdefault(k, v)

def notebooks(args):
    cfg = get_config(ROOT)
    if args: return [Path(a).resolve() for a in args]
    return sorted(p for p in cfg.nbs_path.rglob('*.ipynb')
                  if not any(x.startswith(('_', '.')) for x in p.relative_to(cfg.nbs_path).parts))

if __name__ == '__main__':
    cfg, failed = get_config(ROOT), []
    args = [a for a in sys.argv[1:] if a != '--fast']
    skip = [f for f in cfg.tst_flags.split() if f != 'slow' or '--fast' in sys.argv]
    for nb in notebooks(args):
        t0 = time.time()
        ok, _ = test_nb(nb, skip_flags=skip, basepath=str(ROOT), save=True)
        print(f"{'ok  ' if ok else 'FAIL'} {nb.relative_to(ROOT)} ({time.time() - t0:.1f} s)", flush=True)
        if not ok: failed.append(nb)
    subprocess.run([str(Path(sys.executable).parent / 'nbdev-clean')], cwd=ROOT, check=True)
    sys.exit(1 if failed else 0)
