"Two processes under torchrun (gloo, CPU): the data is split across ranks and the result equals one process."
import json
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from forge_nb.training import TrainConfig, train, demo_records

@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    recs = demo_records(48, seed=3)
    base = dict(max_steps=4, global_batch_size=8, micro_batch_size=2, lr=1e-3, lora_dropout=0.0, track=False,
                num_threads=1, max_length=128)
    dr = train(TrainConfig(**base, output_dir=str(tmp_path / 'ddp')), recs, runtime='torchrun', nproc=2, dry_run=True)
    assert '--nproc_per_node=2' in dr.command and dr.resolved['world_size'] == 2 and dr.resolved['grad_accum'] == 2
    job = train(TrainConfig(**base, output_dir=str(tmp_path / 'ddp')), recs, runtime='torchrun', nproc=2).wait(timeout=300)
    assert job.status() == 'completed'
    log = '\n'.join(job.logs(None))
    assert 'world 2' in log and 'micro 2 x accum 2' in log
    assert job.history().step.tolist() == [1, 2, 3, 4]
    # the same run in one process: same global batches, same loss normalisation, so the same weights
    one = train(TrainConfig(**base, output_dir=str(tmp_path / 'one')), recs, echo=False)
    a = load_file(Path(one.model_path) / 'adapter_model.safetensors')
    b = load_file(Path(job.model_path) / 'adapter_model.safetensors')
    for k in a: torch.testing.assert_close(b[k], a[k], atol=5e-5, rtol=1e-3)
    torch.testing.assert_close(torch.tensor(job.history().loss.values), torch.tensor(one.history().loss.values), atol=1e-5, rtol=1e-4)
