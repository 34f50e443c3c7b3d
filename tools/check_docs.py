"""Offline stand-in for `nbdev-docs` (Quarto cannot be installed here): process the notebooks as nbdev does for the
site, then check what Quarto would be given — valid YAML config, every referenced file present, every processed notebook
valid with a title, rendered to HTML by nbconvert. Quarto-specific rendering is left to CI with Quarto."""
import json, os, shutil, sys, tempfile
from pathlib import Path
import nbformat, yaml
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.doclinks import _build_modidx
from nbdev.serve import proc_nbs

cfg = get_config()
refresh_quarto_yml(); _build_modidx(); nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
proc = proc_nbs(cfg.nbs_path, n_workers=0)
qy = yaml.safe_load((proc / '_quarto.yml').read_text())
errs = []
if qy.get('project', {}).get('type') != 'website': errs.append('_quarto.yml: project.type is not website')
for f in qy.get('metadata-files', []) + [qy['format']['html'].get('css', 'styles.css')]:
    if not (proc / f).exists(): errs.append(f'missing {f} referenced by _quarto.yml')
sb = yaml.safe_load((proc / 'sidebar.yml').read_text())
def entries(x):
    if isinstance(x, str): yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            if k in ('contents', 'section', 'href'): yield from entries(v)
    elif isinstance(x, list):
        for v in x: yield from entries(v)
for e in entries(sb['website']['sidebar']['contents']):
    if e.endswith(('.ipynb', '.qmd', '.md')) and not (proc / e).exists(): errs.append(f'sidebar entry missing: {e}')
n = 0
for nbp in sorted(proc.rglob('*.ipynb')):
    d = json.loads(nbp.read_text())
    for c in d['cells']: c.pop('has_sd', None); c.get('metadata', {}).pop('execution', None)
    d.get('metadata', {}).pop('execution', None)
    nb = nbformat.reads(json.dumps(d), as_version=4)
    try: nbformat.validate(nb)
    except Exception as e: errs.append(f'{nbp.name}: invalid notebook: {e}'); continue
    first = next((c for c in nb.cells if c.cell_type in ('raw', 'markdown')), None)
    if first is None or ('title:' not in first.source and not first.source.lstrip().startswith('# ')):
        errs.append(f'{nbp.name}: no title')
    HTMLExporter(template_name='lab').from_notebook_node(nb); n += 1
if errs: sys.exit('docs check failed:\n  ' + '\n  '.join(errs))
print(f'docs check: {n} notebooks processed and rendered, config and sidebar consistent')
