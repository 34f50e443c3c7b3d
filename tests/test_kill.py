"""Atomic outputs under SIGKILL: `prepare`, `mix`, `evaluate` and a sweep are killed at seeded random moments (>= 20 trials).

After each kill every file in the output folder must be whole (JSONL lines, Parquet, JSON, CSV, PNG all parse), temporaries
are only ever `.<name>.<random>.tmp`, and the next stage's reader either reads a complete folder or raises `IncompleteOutput`
("<stage> did not finish ... rerun <stage>"). A rerun in the same folder must then give the uninterrupted run's outputs
(byte-equal data files; reports compared without run ids and durations). `pytest -s` prints the trial table."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd
import pyarrow.parquet as pq
import pytest
from forge_nb.core.records import IncompleteOutput, INCOMPLETE, read_records, write_records
from forge_nb.core.embedded import domain_rows

DRIVER = r'''
import sys, json, time
from pathlib import Path
stage, out, *a = sys.argv[1:]
T0 = []
def signal_writing(mod, name):
    "Wrap `mod.name` (the call that starts a stage's writes) to print WRITING, so the test can aim kills at the write phase."
    import importlib; m = importlib.import_module(mod); f = getattr(m, name)
    def w(*args, **kw):
        if not T0: T0.append(time.perf_counter()); print('WRITING', flush=True)
        return f(*args, **kw)
    setattr(m, name, w)
if stage == 'prepare':
    signal_writing('forge_nb.data.preparation', 'begin_outputs')
    from forge_nb.data.preparation import prepare
    prepare(a[0], out, on_error='reject')
elif stage == 'mix':
    signal_writing('forge_nb.mixing.mixer', 'begin_outputs')
    from forge_nb.mixing.mixer import mix
    from forge_nb.mixing.config import MixConfig
    mix(a[0], MixConfig(customer_data_percent=50), n_examples=40000, batch_size=16, seed=0).save(out)
elif stage == 'evaluate':
    import torch; torch.set_num_threads(1)
    signal_writing('forge_nb.evaluation.suite', 'atomic_write')
    from forge_nb.evaluation.suite import evaluate
    from forge_nb.evaluation.mmlu import GeneralBenchmark
    from forge_nb.evaluation.qa import DomainQA
    from forge_nb.core.embedded import tiny_model_path
    rep = evaluate({'base': str(tiny_model_path())}, [GeneralBenchmark(1), DomainQA(a[0], limit=2, max_new_tokens=8)], log=False, verbose=False)
    rep.save(Path(out) / 'eval.json')
elif stage == 'sweep':
    from forge_nb.workflow.sweeps import SweepConfig, sweep
    cfg = SweepConfig(customer_percents=[100, 50], seeds=[0], steps=2, global_batch_size=4, general_items=1, general_qa_items=1,
                      domain_items=2, workers=1)
    sweep(a[0], a[1], cfg, out_dir=out, verbose=False)
print('WINDOW', time.perf_counter() - T0[0] if T0 else 0.0, flush=True)
'''

TRIALS = []   # (stage, trial, delay s, folder, state, temporaries left, rerun equal)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp('kill')
    (d / 'driver.py').write_text(DRIVER)
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONHASHSEED='0', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
             MLFLOW_DISABLE_TELEMETRY='true', TOKENIZERS_PARALLELISM='false')
    yield d, e
    if TRIALS:
        t = pd.DataFrame(TRIALS, columns=['stage', 'trial', 'delay_s', 'folder', 'state found', 'tmp left', 'rerun equal'])
        print('\n\nSIGKILL trials\n' + t.to_string(index=False))
        print('\nstates per stage:\n' + t.groupby(['stage', 'state found']).size().to_string())

def _run(env, stage, out, *args) -> tuple[float, float]:
    "Run `stage` to completion; returns its wall time and how long it spent writing (from its first write to the end)."
    d, e = env; t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(d / 'driver.py'), stage, str(out), *map(str, args)], env=e, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return time.perf_counter() - t0, float(r.stdout.split('WINDOW')[-1])

def _kill_at(env, delay, stage, out, *args, after_writing=False) -> bool:
    "Start `stage` and SIGKILL it (its whole process group) `delay` s after its start (or after it starts writing); False if it finished first."
    d, e = env
    p = subprocess.Popen([sys.executable, str(d / 'driver.py'), stage, str(out), *map(str, args)], env=e, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if after_writing:
            for line in p.stdout:
                if line.startswith('WRITING'): break
        p.wait(delay); return False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.wait(); return True
    finally: p.stdout.close()

# ---- whole files -------------------------------------------------------------------------------------------------------

def _whole(f: Path):
    "Parse `f` completely (raises on a truncated file)."
    if f.suffix == '.jsonl':
        b = f.read_bytes()
        assert not b or b.endswith(b'\n'), f'{f}: no final newline (truncated)'
        for line in b.decode('utf-8').splitlines(): json.loads(line)
    elif f.suffix == '.parquet': pq.read_table(f)
    elif f.suffix == '.json': json.loads(f.read_text())
    elif f.suffix == '.csv': pd.read_csv(f)
    elif f.suffix == '.png':
        from PIL import Image
        with Image.open(f) as im: im.load()

def _scan(folder: Path, skip=()) -> tuple[list, int]:
    "Output files (each checked whole) and the number of temporaries under `folder`; a dot-file is only ever a temporary or the flag."
    outs, tmp = [], 0
    if not folder.exists(): return outs, tmp
    for f in sorted(folder.rglob('*')):
        rel = f.relative_to(folder)
        if not f.is_file() or any(p in skip for p in rel.parts) or f.name.startswith('mlflow.db'): continue
        if f.name.startswith('.'):
            if f.name == INCOMPLETE: assert json.loads(f.read_text())['marker']; continue
            assert f.name.endswith('.tmp'), f'{f}: an unexpected hidden file'
            tmp += 1; continue
        _whole(f); outs.append(rel.as_posix())
    return outs, tmp

def _state(folder: Path, marker: str, outs, tmp) -> str:
    "complete (marker) | partial (flagged: some outputs, no marker) | writing (flagged: temporaries only) | nothing yet."
    if (folder / marker).exists(): return 'complete (marker)'
    if not outs: return 'writing (flagged, temporaries only)' if tmp else 'nothing yet' + (' (flagged)' if (folder / INCOMPLETE).exists() else '')
    assert (folder / INCOMPLETE).exists(), f'{folder}: outputs without the marker and not flagged unfinished: {outs}'
    return 'partial (flagged)'

MID = ('partial', 'writing')   # states of a kill that landed while the stage wrote its files

def _same_bytes(a: Path, b: Path, names) -> bool:
    "Data files byte-equal; JSON reports equal without run ids, durations and paths (which name the folder)."
    def get(f): return _drop(json.loads(f.read_text()), KEYS + ('paths',)) if f.suffix == '.json' else f.read_bytes()
    return all(get(a / n) == get(b / n) for n in names)

def _clean(folder: Path, marker: str, skip=()):
    "After a finished rerun: the marker, no flag, no temporaries."
    outs, tmp = _scan(folder, skip)
    assert (folder / marker).exists() and not (folder / INCOMPLETE).exists() and tmp == 0, (folder, outs, tmp)

def _delays(T, n, lo, hi, seed):
    "`n` delays, one seeded random point in each of `n` equal strata of [lo*T, hi*T]."
    rng = np.random.default_rng(seed); w = (hi - lo) / n
    return [round(T * (lo + w * (i + rng.uniform())), 3) for i in range(n)]

def _plan(T, W, n_any, n_writing, seed):
    "`(delay, aimed)`: `n_any` kills anywhere in [0.3 T, 1.1 T], then `n_writing` aimed at the write phase (delays in [0, 1.1 W] after it starts)."
    return [(d, False) for d in _delays(T, n_any, 0.3, 1.1, seed)] + [(d, True) for d in _delays(W, n_writing, 0.0, 1.1, seed + 1)]

def _file_trials(env, stage, args, ref, marker, names, reader, plan, tmp_path):
    "Kill `stage` at each `(delay, aimed)` of `plan` (folders alternately fresh and reused); check, rerun, compare with `ref`."
    states, folder = [], None
    def trial(i, delay, aimed, fresh):
        nonlocal folder
        if fresh or folder is None: folder = tmp_path / f'{stage}{i}'
        _kill_at(env, delay, stage, folder, *args, after_writing=aimed)
        outs, tmp = _scan(folder)
        st = _state(folder, marker, outs, tmp)
        if st.startswith('complete'): assert _same_bytes(folder, ref, names), f'{folder}: marker present but outputs differ from the reference'
        reader(folder, st)
        _run(env, stage, folder, *args)
        _clean(folder, marker)
        eq = _same_bytes(folder, ref, names)
        TRIALS.append((stage, i, f"{delay:.3f}{' after WRITING' if aimed else ''}", 'fresh' if fresh else 'reused', st, tmp, eq))
        states.append((delay, st))
        assert eq, f'{stage} trial {i}: the rerun differs from the uninterrupted run'
    for i, (dl, aimed) in enumerate(plan): trial(i, dl, aimed, fresh=i % 2 == 0)
    return states

# ---- the stages ----------------------------------------------------------------------------------------------------------

PREP = ['train.jsonl', 'validation.jsonl', 'test.jsonl', 'rejects.jsonl', 'summary.json']
MIXF = ['mix_config.json', 'mixed.jsonl', 'manifest.parquet', 'report.json']

@pytest.fixture(scope='module')
def prep_ref(env, tmp_path_factory):
    d = tmp_path_factory.mktemp('prep_ref')
    write_records(domain_rows(80000), d / 'big.jsonl')   # ~20 MB: writing the splits takes a measurable time
    T = min(_run(env, 'prepare', d / 'ref', d / 'big.jsonl') for _ in range(2))   # the second run goes over a complete folder
    return d / 'big.jsonl', d / 'ref', T   # T: (wall time, writing time)

@pytest.mark.slow
def test_kill_prepare(env, prep_ref, tmp_path):
    from forge_nb.mixing.mixer import mix
    src, ref, T = prep_ref
    def reader(folder, st):   # the next stage (mix) reads the train split
        if not (folder / 'train.jsonl').exists(): return
        if st.startswith('complete'): assert len(read_records(folder / 'train.jsonl')) > 0; return
        with pytest.raises(IncompleteOutput, match=r'prepare did not finish.*rerun prepare'): mix(folder / 'train.jsonl', n_examples=10)
    states = _file_trials(env, 'prepare', [src], ref, 'summary.json', PREP, reader, _plan(*T, 3, 4, 0), tmp_path)
    assert any(s.startswith(MID) for _, s in states), f'no kill landed while prepare wrote its files: {states}'

@pytest.mark.slow
def test_kill_mix(env, prep_ref, tmp_path):
    train = prep_ref[1] / 'train.jsonl'
    ref = tmp_path / 'ref'; T = min(_run(env, 'mix', ref, train) for _ in range(2))
    def reader(folder, st):   # the next stage (training) reads mixed.jsonl
        if not (folder / 'mixed.jsonl').exists(): return
        if st.startswith('complete'): assert len(read_records(folder / 'mixed.jsonl')) == 40000; return
        with pytest.raises(IncompleteOutput, match=r'mix did not finish.*rerun mix'): read_records(folder / 'mixed.jsonl')
    states = _file_trials(env, 'mix', [train], ref, 'report.json', MIXF, reader, _plan(*T, 2, 3, 10), tmp_path)
    assert any(s.startswith(MID) for _, s in states), f'no kill landed while mix wrote its files: {states}'

KEYS = ('seconds', 'run_id', 'run_ids', 'parent_run_id')

def _drop(d, keys=KEYS):
    if isinstance(d, dict): return {k: _drop(v, keys) for k, v in d.items() if k not in keys}
    if isinstance(d, list): return [_drop(v, keys) for v in d]
    return d

@pytest.mark.slow
def test_kill_evaluate(env, prep_ref, tmp_path):
    test = prep_ref[1] / 'test.jsonl'
    ref = tmp_path / 'ref'; T = _run(env, 'evaluate', ref, test)
    want = _drop(json.loads((ref / 'eval.json').read_text()))
    folder = None
    for i, (dl, aimed) in enumerate(_plan(*T, 3, 1, 20)):
        if i % 2 == 0: folder = tmp_path / f'evaluate{i}'
        _kill_at(env, dl, 'evaluate', folder, test, after_writing=aimed)
        outs, tmp = _scan(folder)
        st = ('complete (stale)' if i % 2 else 'complete (file)') if (folder / 'eval.json').exists() else 'nothing yet'
        if outs: assert outs == ['eval.json'] and _drop(json.loads((folder / 'eval.json').read_text())) == want   # whole, never half
        _run(env, 'evaluate', folder, test)
        _clean(folder, 'eval.json')
        eq = _drop(json.loads((folder / 'eval.json').read_text())) == want
        TRIALS.append(('evaluate', i, f"{dl:.3f}{' after WRITING' if aimed else ''}", 'fresh' if i % 2 == 0 else 'reused', st, tmp, eq))
        assert eq

@pytest.mark.slow
def test_kill_sweep(env, tmp_path):
    "A chain: each kill is followed by a resumed sweep in the same folder (killed in turn); the last resume completes."
    from forge_nb.data.preparation import prepare
    from forge_nb.workflow.sweeps import SweepResult, RUN_MARKER, SWEEP_MARKER
    write_records(domain_rows(120), tmp_path / 'dom.jsonl'); p = prepare(tmp_path / 'dom.jsonl', tmp_path / 'prep')
    args = [p.paths['train'], p.paths['test']]
    ref = tmp_path / 'ref'; T = _run(env, 'sweep', ref, *args)[0]
    keys = ['base', 'mix100-seed0', 'mix50-seed0']
    res = lambda f: {k: _drop(json.loads((f / k / RUN_MARKER).read_text())) for k in keys if (f / k / RUN_MARKER).exists()}
    want = res(ref)
    folder, finished = tmp_path / 'sw', {}
    for i, dl in enumerate(_delays(T, 4, 0.15, 0.75, 3)):
        _kill_at(env, dl, 'sweep', folder, *args)
        outs, tmp = _scan(folder, skip=('train', 'mlruns'))
        got = res(folder)
        assert all(got[k] == want[k] for k in got), 'a finished run (result.json present) differs from the reference'
        for k, m in finished.items(): assert (folder / k / RUN_MARKER).stat().st_mtime_ns == m, f'{k}: a finished run was redone'
        finished = {k: (folder / k / RUN_MARKER).stat().st_mtime_ns for k in got}
        if (folder / SWEEP_MARKER).exists(): st = 'complete (marker)'; SweepResult.load(folder)
        else:
            st = f'partial: {len(got)}/3 runs' if outs else 'nothing yet'
            if outs:
                with pytest.raises(IncompleteOutput, match=r'sweep did not finish.*rerun sweep'): SweepResult.load(folder)
        TRIALS.append(('sweep', i, f'{dl:.3f}', 'chained', st, tmp, None))
    _run(env, 'sweep', folder, *args)
    _clean(folder, SWEEP_MARKER, skip=('train', 'mlruns'))
    for k in keys: _clean(folder / k, RUN_MARKER, skip=('train',))
    r, r0 = SweepResult.load(folder), SweepResult.load(ref)
    eq = res(folder) == want and (folder / 'summary.csv').read_bytes() == (ref / 'summary.csv').read_bytes()
    pd.testing.assert_frame_equal(r.runs.drop(columns=['run_id', 'seconds']), r0.runs.drop(columns=['run_id', 'seconds']))
    TRIALS[-4:] = [t[:-1] + (eq,) for t in TRIALS[-4:]]
    assert eq

def test_s3_marker_uploaded_last(monkeypatch, tmp_path):
    "An s3:// destination gets one put per file, the stale marker deleted first and `summary.json` put last."
    import forge_nb.data.preparation as P
    calls = []
    class FakeS3:
        def delete_object(self, Bucket, Key): calls.append(('delete', Key))
    monkeypatch.setattr(P, 's3_client', lambda: FakeS3())
    monkeypatch.setattr(P, 'upload_path', lambda f, uri: calls.append(('put', uri.rsplit('/', 1)[-1])))
    P.prepare(domain_rows(30), 's3://bkt/prep')
    assert calls[0] == ('delete', 'prep/summary.json') and calls[-1] == ('put', 'summary.json')
    assert sorted(k for _, k in calls[1:-1]) == ['rejects.jsonl', 'test.jsonl', 'train.jsonl', 'validation.jsonl']

# ---- the MLflow store --------------------------------------------------------------------------------------------------
STORE = r'''
import sys, time
from forge_nb.core.tracking import open_client
t = time.perf_counter(); c = open_client('sqlite:///' + sys.argv[1])
c.create_experiment(sys.argv[2]); print('T', time.perf_counter() - t, flush=True)
'''

@pytest.mark.slow
def test_kill_while_creating_the_sqlite_store(env, tmp_path):
    """A sweep or run killed while MLflow creates its sqlite store (schema migrations take seconds) left a half-migrated database
    that every later run refused ('out-of-date database schema'); now the store appears whole or not at all, and the rerun works."""
    d, e = env; (d / 'store.py').write_text(STORE)
    go = lambda db, name: subprocess.run([sys.executable, str(d / 'store.py'), str(db), name], env=e, capture_output=True, text=True, timeout=300)
    r = go(tmp_path / 'ref.db', 'x'); assert r.returncode == 0, r.stderr[-2000:]
    T = float(r.stdout.split('T')[-1])
    for i, dl in enumerate(_delays(T, 6, 0.3, 1.0, 7)):
        db = tmp_path / f's{i}' / 'mlflow.db'; db.parent.mkdir()
        p = subprocess.Popen([sys.executable, str(d / 'store.py'), str(db), 'x'], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try: p.wait(dl)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()
        r = go(db, f'after-kill-{i}')                      # the next run opens (or creates) the store and works
        assert r.returncode == 0, f'trial {i} (killed after {dl:.2f} s): {r.stderr[-1500:]}'
        tmp = sum(f.name.endswith('.building') for f in db.parent.iterdir())   # a killed builder's temporary may stay; it is never read
        TRIALS.append(('mlflow store', i, f'{dl:.3f}', 'fresh', 'opened after the kill', tmp, True))
    # two processes creating the same store at once: both work, one database
    db = tmp_path / 'race' / 'mlflow.db'; db.parent.mkdir()
    ps = [subprocess.Popen([sys.executable, str(d / 'store.py'), str(db), f'r{k}'], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for k in range(2)]
    assert all(p.wait(300) == 0 for p in ps), [p.stderr.read()[-1500:] for p in ps]
    from forge_nb.core.tracking import open_client
    assert {x.name for x in open_client(f'sqlite:///{db}').search_experiments()} >= {'r0', 'r1'}

def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    """A single-file output (an eval report) killed mid-write leaves `.<name>.<host>-<pid>.<random>.tmp`; the next write of
    that file removes it when its process is gone, and never touches the temporary of a writer that is still alive."""
    from forge_nb.core.records import atomic_write, _HOST
    dead = subprocess.Popen([sys.executable, '-c', 'pass']); dead.wait()
    stale = tmp_path / f'.eval.json.{_HOST}-{dead.pid}.abc.tmp'; stale.write_text('half a report')
    live = tmp_path / f'.eval.json.{_HOST}-{os.getpid()}.xyz.tmp'; live.write_text('being written')
    other = tmp_path / '.other.json.x.tmp'; other.write_text('not ours')
    atomic_write(tmp_path / 'eval.json', '{}')
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, 'eval.json'])
