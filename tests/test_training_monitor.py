"Live monitor: data layer and headless ipywidgets view against a real short training run."
import json, time
from pathlib import Path
import pytest
from forge_nb.training import TrainConfig, train, demo_records
from forge_nb.training.monitor import read_progress, Monitor, monitor, progress_figure, gpu_stats, Progress

def test_monitor_follows_a_real_run(tmp_path):
    job = train(TrainConfig(max_steps=25, global_batch_size=8, track=False, num_threads=1, max_length=128,
                            output_dir=str(tmp_path / 'run')), demo_records(48, seed=7), runtime='subprocess')
    mon = Monitor(job, refresh_s=0.1)
    snaps = []
    t0 = time.time()
    while (p := mon.refresh()).state not in ('completed', 'failed'):
        snaps.append(p); assert time.time() - t0 < 240; time.sleep(0.1)
    assert p.state == 'completed' and p.step == p.max_steps == 25 and p.eta_s == 0.0
    steps = [s.step for s in snaps]
    assert steps == sorted(steps)                                    # progress only moves forward
    assert any(s.state == 'running' for s in snaps)                  # seen while it trained (start-up alone takes seconds)
    mid = [s for s in snaps if 0 < s.step < 25]
    for s in mid: assert s.eta_s is not None and s.eta_s >= 0 and len(s.metrics) == s.step
    assert p.sources == ['chat', 'customer', 'math']
    assert list(p.metrics.step) == list(range(1, 26))
    assert any('step 25/25' in l for l in p.log_tail) and len(p.log_tail) <= 12
    # widget state reflects the final snapshot
    assert 'completed' in mon.header.value and 'step 25/25' in mon.header.value
    assert mon.bar.value == 1.0 and mon.bar.bar_style == 'success'
    assert mon.plot.value[:4] == b'\x89PNG' and 'done: loss' in mon.log.value
    fig = progress_figure(p)
    assert len(fig.axes[0].lines) == 1 + 3 and fig.axes[0].get_title() == 'loss'
    # the same from the folder alone, and a background monitor that stops by itself
    q = read_progress(tmp_path / 'run', gpu=False)
    assert (q.state, q.step, q.run_id) == ('completed', 25, None)
    m2 = monitor(tmp_path / 'run', refresh_s=0.05); m2._thread.join(timeout=30)
    assert not m2._thread.is_alive() and m2.progress.state == 'completed'

def test_partial_lines_and_missing_files(tmp_path):
    d = tmp_path / 'r'; d.mkdir()
    p = read_progress(d, gpu=False)
    assert (p.state, p.step, len(p.metrics)) == ('pending', 0, 0)
    (d / 'status.json').write_text(json.dumps({'state': 'running', 'step': 1, 'max_steps': 4}))
    (d / 'metrics.jsonl').write_text(json.dumps({'step': 1, 'loss': 2.0, 'loss/customer': 2.5, 'lr': 1e-4, 'tokens_per_s': 10.0,
                                                 'eta_s': 30.0, 'elapsed_s': 10.0}) + '\n{"step": 2, "lo')   # a line mid-write
    p = read_progress(d, gpu=False)
    assert (p.state, p.step, p.eta_s, p.sources) == ('running', 1, 30.0, ['customer'])
    assert 'ETA 0m30s' in p.summary()
    assert isinstance(gpu_stats(), list)
