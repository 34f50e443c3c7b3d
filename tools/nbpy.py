"""Round-trip notebooks and percent-format scripts, so lessons can be drafted as plain text.

    python tools/nbpy.py to-nb draft.py nbs/01_x.ipynb   # `# %%` code cells, `# %% [markdown]` markdown cells
    python tools/nbpy.py to-py nbs/01_x.ipynb draft.py

Markdown cell lines are written as `# ` comments. Outputs are not kept (run the notebook to get them).
"""
import hashlib, json, re, sys
from pathlib import Path

_HDR = re.compile(r'^# %%(?: \[(markdown|raw)\])?\s*$')

def py_to_cells(text):
    cells, cur, kind = [], None, None
    for line in text.splitlines():
        m = _HDR.match(line)
        if m:
            if cur is not None: cells.append((kind, cur))
            kind, cur = (m.group(1) or 'code'), []
            continue
        if cur is None: kind, cur = 'code', []
        cur.append(line)
    if cur is not None: cells.append((kind, cur))
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind in ('markdown', 'raw'): lines = [l[2:] if l.startswith('# ') else l[1:] if l.startswith('#') else l for l in lines]
        src = '\n'.join(lines)
        if not src.strip(): continue
        c = {'cell_type': kind, 'id': hashlib.sha1(f'{len(out)}:{src}'.encode()).hexdigest()[:8], 'metadata': {},
             'source': src.splitlines(keepends=True)}
        if kind == 'code': c.update(execution_count=None, outputs=[])
        out.append(c)
    return out

def to_nb(src, dst):
    nb = {'cells': py_to_cells(Path(src).read_text()),
          'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    Path(dst).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + '\n')

def to_py(src, dst):
    nb = json.loads(Path(src).read_text())
    parts = []
    for c in nb['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] == 'code': parts.append('# %%\n' + s)
        else: parts.append(f"# %% [{c['cell_type']}]\n" + '\n'.join(('# ' + l) if l else '#' for l in s.splitlines()))
    Path(dst).write_text('\n\n'.join(parts) + '\n')

if __name__ == '__main__':
    cmd, a, b = sys.argv[1:4]
    {'to-nb': to_nb, 'to-py': to_py}[cmd](a, b)
