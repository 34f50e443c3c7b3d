"""Fail when the committed files are not what the notebooks produce: the library (nbdev-export), clean notebooks
(nbdev-clean) and README.md (tools/make_readme.py). Files are fixed in place; the message lists what changed."""
import hashlib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def snapshot():
    files = [*(ROOT / 'forge_nb').rglob('*.py'), *(ROOT / 'nbs').rglob('*.ipynb'), ROOT / 'README.md']
    return {f.relative_to(ROOT).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
            if f.exists() and '.ipynb_checkpoints' not in f.parts}

before = snapshot()
for cmd in ([str(BIN / 'nbdev-export')], [str(BIN / 'nbdev-clean')], [sys.executable, str(ROOT / 'tools' / 'make_readme.py')]):
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
after = snapshot()
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
if changed:
    sys.exit('Out of sync with the notebooks (now regenerated; review and commit):\n  ' + '\n  '.join(changed))
print(f'in sync: {len(after)} files (library, notebooks, README)')
