"""Render README.md from nbs/index.ipynb offline (nbdev-readme needs Quarto, which cannot be installed everywhere).

Cells marked `#| hide` are dropped, nbdev directives are stripped, and the front-matter title becomes the heading.
"""
import copy, json, re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
_DIR = re.compile(r'^\s*#\s*\|.*$\n?', re.M)

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = nbformat.read(nb_path, as_version=4)
    out = copy.deepcopy(nb); out.cells = []
    for c in nb.cells:
        src = c.source
        if c.cell_type == 'code' and re.search(r'^\s*#\s*\|\s*(hide|include:\s*false)', src, re.M): continue
        if c.cell_type == 'code' and re.search(r'^\s*#\s*\|\s*echo:\s*false', src, re.M): c = copy.deepcopy(c); c.source = ''
        elif c.cell_type == 'code': c = copy.deepcopy(c); c.source = _DIR.sub('', src)
        out.cells.append(c)
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(out)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n' + body

if __name__ == '__main__':
    text = render()
    dst = ROOT / 'README.md'
    if '--check' in sys.argv:
        sys.exit(0 if dst.exists() and dst.read_text() == text else 'README.md is out of date: run `make readme`')
    dst.write_text(text); print(f'wrote {dst} ({len(text)} chars)')
