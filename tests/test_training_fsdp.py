"FSDP2 full shard (`sharding='fsdp'`) under torchrun: gloo on CPU (NCCL + bf16 on GPUs). Two sharded processes equal one, sharded (DCP) checkpoints resume exactly, the final model is a plain Hugging Face folder."
import json, shutil
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from forge_nb.core.jobs import RunFolder
from forge_nb.training import TrainConfig, train, demo_records
from forge_nb.training.precision import estimate_memory
from conftest import sharded_and_single, saved_weights, assert_same_plain_hf_model

# the same runs as tests/test_training_torchrun.py, full SFT; save_steps=2 leaves a sharded checkpoint at step 2
BASE = dict(method='full', sharding='fsdp', max_steps=4, save_steps=2, global_batch_size=8, micro_batch_size=2, lr=1e-4,
            lora_dropout=0.0, track=False, num_threads=1, max_length=128)
# measured on CPU (fp32, gloo): per-step loss |2 proc - 1 proc| <= 5e-7, grad norm <= 1e-4, weights <= 2e-5; resumed == uninterrupted exactly
LOSS_TOL, WEIGHT_TOL = dict(atol=1e-5, rtol=1e-5), dict(atol=1e-4, rtol=1e-4)

def _pair(tmp: Path, recs, **over):
    "The run sharded over 2 torchrun processes (`tmp/fsdp`) and in one process (`tmp/one`)."
    return sharded_and_single(tmp, {**BASE, **over}, recs, name='fsdp', timeout=600)

@pytest.fixture(scope='module')
def full_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('fsdp_full'); recs = demo_records(48, seed=3)
    return tmp, recs, *_pair(tmp, recs)

def test_fsdp_two_processes_equal_one(full_pair):
    tmp, recs, job, one = full_pair
    log = '\n'.join(job.logs(None))
    assert 'micro 2 x accum 2 x world 2, FSDP full shard' in log
    assert json.loads((tmp / 'fsdp' / 'resolved_config.json').read_text())['parallel'] == 'fsdp'
    assert "training unsharded" in '\n'.join(one.logs(None))            # one process: sharding='fsdp' runs unsharded
    h2, h1 = job.history(), one.history()
    assert h2.step.tolist() == h1.step.tolist() == [1, 2, 3, 4]
    torch.testing.assert_close(torch.tensor(h2.loss.values), torch.tensor(h1.loss.values), **LOSS_TOL)
    torch.testing.assert_close(torch.tensor(h2.grad_norm.values), torch.tensor(h1.grad_norm.values), atol=1e-3, rtol=1e-4)
    for col in [c for c in h1.columns if c.startswith('loss/')]:           # per-source losses too
        torch.testing.assert_close(torch.tensor(h2[col].values), torch.tensor(h1[col].values), equal_nan=True, **LOSS_TOL)

def test_fsdp_final_model_is_a_plain_hf_folder(full_pair):
    tmp, recs, job, one = full_pair
    assert_same_plain_hf_model(job.model_path, one.model_path, **WEIGHT_TOL)

def test_fsdp_checkpoint_is_sharded_and_resumes_exactly(full_pair):
    tmp, recs, job, one = full_pair
    ck = tmp / 'fsdp' / 'checkpoints' / 'step-000002'
    files = {str(f.relative_to(ck)) for f in ck.rglob('*') if f.is_file()}
    assert {'sharded/.metadata', 'sharded/__0_0.distcp', 'sharded/__1_0.distcp', 'rng-0.pt', 'rng-1.pt', 'state.pt'} <= files
    assert 'trainable.pt' not in files                                   # no rank gathered the weights
    assert json.loads((ck / 'checkpoint.json').read_text())['sharded_over'] == 2
    ref_h = job.history()
    # resume the run from its step-2 checkpoint (a copy, its final model removed): sharded over 2 again, and in 1 process
    for name, kw in (('resumed2', dict(runtime='torchrun', nproc=2)), ('resumed1', dict(echo=False))):
        d = tmp / name; shutil.copytree(tmp / 'fsdp', d); shutil.rmtree(d / 'model')
        again = train(TrainConfig(**BASE, output_dir=str(d)), recs, resume=True, **kw)
        if 'runtime' in kw: again = again.wait(timeout=600)
        assert again.status() == 'completed', '\n'.join(again.logs(80))
        assert 'resumed from step-000002 (step 2)' in '\n'.join(again.logs(None))
        h = again.history()
        assert h.step.tolist() == [1, 2, 3, 4]
        exact = name == 'resumed2'        # same world size: bit-for-bit; resharded to 1 process: other micro-batch sums
        tol = dict(atol=0, rtol=0) if exact else LOSS_TOL
        torch.testing.assert_close(torch.tensor(h.loss.values), torch.tensor(ref_h.loss.values), **tol)
        a, b = saved_weights(job.model_path), saved_weights(again.model_path)
        for k in a: torch.testing.assert_close(b[k], a[k], **(tol if exact else WEIGHT_TOL))

def test_fsdp_lora_two_processes_equal_one(tmp_path):
    recs = demo_records(48, seed=3)
    job, one = _pair(tmp_path, recs, method='lora', lr=1e-3)
    assert 'FSDP full shard' in '\n'.join(job.logs(None))
    torch.testing.assert_close(torch.tensor(job.history().loss.values), torch.tensor(one.history().loss.values), **LOSS_TOL)
    ck = tmp_path / 'fsdp' / 'checkpoints' / 'step-000002'
    assert (ck / 'sharded' / '.metadata').exists() and (ck / 'adapter' / 'adapter_model.safetensors').exists()
    a = load_file(Path(one.model_path) / 'adapter_model.safetensors')
    b = load_file(Path(job.model_path) / 'adapter_model.safetensors')
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(b[k], a[k], atol=5e-5, rtol=1e-3)   # the torchrun (DDP) test's tolerance

def test_fsdp_config_errors_and_estimate(tmp_path):
    with pytest.raises(ValueError, match=r"TrainConfig.sharding='zero3': must be one of \('none', 'fsdp', 'deepspeed'\)"): TrainConfig(sharding='zero3')
    with pytest.raises(ValueError, match="sharding='fsdp' with method='qlora'"): TrainConfig(sharding='fsdp', method='qlora')
    with pytest.raises(ValueError, match="sharding='fsdp' with objective='dpo'"): TrainConfig(sharding='fsdp', objective='dpo')
    with pytest.raises(ValueError, match="use dtype='bf16'"): TrainConfig(sharding='fsdp', dtype='fp16')
    with pytest.raises(ValueError, match="runs on 'cuda' or 'cpu'"): TrainConfig(sharding='fsdp', device='mps')
    with pytest.raises(ValueError, match='valid keys'): TrainConfig.from_dict({'shard': 'fsdp'})
    assert TrainConfig().sharding == 'none' and TrainConfig.from_dict({'sharding': 'fsdp'}).sharding == 'fsdp'
    # the dry run's memory estimate is per device, sharded: weights, gradients and optimizer states halve over 2 ranks
    cfg = TrainConfig(**BASE, output_dir=str(tmp_path / 'dry'))
    dr = train(cfg, demo_records(16), runtime='torchrun', nproc=2, dry_run=True)
    est, whole = dr.memory, estimate_memory(cfg, device='cpu', world_size=2, sharded=False)
    assert dr.resolved['sharding'] == 'fsdp' and (est.weights, est.optimizer) == (whole.weights // 2, whole.optimizer // 2)

@pytest.mark.slow
def test_fsdp_bf16_mixed_precision_cpu(tmp_path):
    "bf16 through FSDP's MixedPrecisionPolicy (weights gathered in bf16, gradients reduced in fp32) on CPU: what the GPU runs use."
    job, one = _pair(tmp_path, demo_records(48, seed=3), dtype='bf16', save_steps=None)
    assert '(sft, bf16)' in '\n'.join(job.logs(None))
    # the sharded run also casts norms and embeddings to bf16 (autocast alone keeps them fp32): measured |d loss| <= 0.023
    torch.testing.assert_close(torch.tensor(job.history().loss.values), torch.tensor(one.history().loss.values), atol=2e-2, rtol=2e-2)
    a, b = saved_weights(one.model_path), saved_weights(job.model_path)
    for k in a: torch.testing.assert_close(b[k], a[k], atol=2e-3, rtol=1e-2)     # measured max |d| 4.4e-4

# --- the same on GPUs: NCCL, bf16 mixed precision (MixedPrecisionPolicy: bf16 compute, fp32 reduce and masters) ---

@pytest.mark.gpu
@pytest.mark.slow
def test_fsdp_cuda_nccl_bf16_two_processes_equal_one(tmp_path):
    if torch.cuda.device_count() < 2: pytest.skip('needs 2 GPUs: NCCL runs one rank per GPU')
    recs = demo_records(48, seed=3)
    job, one = _pair(tmp_path, recs, dtype='bf16')
    log = '\n'.join(job.logs(None))
    assert 'FSDP full shard' in log and '(sft, bf16)' in log and 'device=cuda' in log
    # bf16 compute: the two runs sum their micro-batches in other groupings, so they agree to bf16's precision only
    torch.testing.assert_close(torch.tensor(job.history().loss.values), torch.tensor(one.history().loss.values), atol=2e-2, rtol=2e-2)
    a, b = saved_weights(one.model_path), saved_weights(job.model_path)
    for k in a: torch.testing.assert_close(b[k], a[k], atol=2e-3, rtol=1e-2)
    assert (tmp_path / 'fsdp' / 'checkpoints' / 'step-000002' / 'sharded' / '__1_0.distcp').exists()

@pytest.mark.gpu
def test_fsdp_cuda_one_rank_bf16_step_and_checkpoint(tmp_path):
    "In this process: FSDP2 over a one-rank NCCL group with bf16 mixed precision trains like the unsharded model under autocast, and its DCP checkpoint reloads."
    import torch.distributed as dist
    from forge_nb.core.models import model_ref
    from forge_nb.training.model import build_model, make_optimizer, shard_model
    from forge_nb.training.precision import resolve_precision, autocast_for
    from forge_nb.training.checkpoints import save_checkpoint, load_checkpoint, full_state_dict, is_sharded
    cfg = TrainConfig(method='full', dtype='bf16', lr=1e-4); dev = torch.device('cuda', 0); prec = resolve_precision(cfg, dev)
    x = torch.arange(1, 33, device=dev)[None]
    def losses(model, opt):
        out = []
        for _ in range(3):
            with autocast_for(prec, dev): loss = model(input_ids=x, labels=x).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); out.append(float(loss))
        return out
    ref, *_ = build_model(cfg, model_ref(None), dev, use_gc=False, prec=prec)
    ref_losses = losses(ref, make_optimizer(ref, cfg, 1e-4, 10)[1])
    dist.init_process_group('nccl', store=dist.HashStore(), rank=0, world_size=1)
    try:
        m, *_ = build_model(cfg, model_ref(None), dev, use_gc=False, prec=prec)
        shard_model(m, dev, 1, prec); assert is_sharded(m)
        _, opt, sched = make_optimizer(m, cfg, 1e-4, 10)
        torch.testing.assert_close(torch.tensor(losses(m, opt)), torch.tensor(ref_losses), atol=2e-2, rtol=2e-2)
        ck = save_checkpoint(tmp_path, 3, m, opt, sched)
        full = full_state_dict(m)
        m2, *_ = build_model(cfg, model_ref(None), dev, use_gc=False, prec=prec)
        shard_model(m2, dev, 1, prec); _, opt2, sched2 = make_optimizer(m2, cfg, 1e-4, 10)
        assert load_checkpoint(ck, m2, opt2, sched2) == 3
        full2 = full_state_dict(m2)
        for k in full: torch.testing.assert_close(full2[k], full[k], atol=0, rtol=0)
    finally: dist.destroy_process_group()
