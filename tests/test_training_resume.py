"Kill a real training subprocess mid-run, resume it, and end at the same weights as an uninterrupted run."
import json, os, signal, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from forge_nb.training import TrainConfig, train, TrainJob, demo_records

@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(tmp_path):
    recs = demo_records(64, seed=2)
    base = dict(max_steps=40, global_batch_size=16, micro_batch_size=4, lr=1e-3, warmup_steps=3, save_steps=5,
                lora_dropout=0.1, track=False, num_threads=1, max_length=128, lr_scheduler='cosine')
    ref = train(TrainConfig(**base, output_dir=str(tmp_path / 'ref')), recs, echo=False)
    assert ref.status() == 'completed'

    cfg = TrainConfig(**base, output_dir=str(tmp_path / 'killed'))
    job = train(cfg, recs, runtime='subprocess')
    ck = tmp_path / 'killed' / 'checkpoints'
    t0 = time.time()
    while not (ck.exists() and any(p.name.startswith('step-') for p in ck.iterdir())):
        assert job.status() not in ('completed', 'failed'), job.logs(20)
        assert time.time() - t0 < 240, 'no checkpoint within 240 s'
        time.sleep(0.02)
    os.kill(job.pid, signal.SIGKILL); job._proc.wait()
    assert job.status() == 'failed'                      # died without finishing
    st = json.loads((tmp_path / 'killed' / 'status.json').read_text())
    assert st['state'] == 'running' and st['step'] < 40    # the process never got to write anything else
    assert not (tmp_path / 'killed' / 'adapter').exists()

    again = train(cfg, recs, runtime='subprocess', resume=True).wait(timeout=300)
    assert again.status() == 'completed'
    log = '\n'.join(again.logs(None))
    assert 'resumed from step-' in log
    h = again.history()
    assert h.step.tolist() == list(range(1, 41))          # metrics continue without gaps or duplicates
    a = load_file(Path(ref.model_path) / 'adapter_model.safetensors')
    b = load_file(Path(again.model_path) / 'adapter_model.safetensors')
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    assert h.loss.iloc[-1] == pytest.approx(ref.history().loss.iloc[-1], rel=1e-4)
