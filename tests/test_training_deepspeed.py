"DeepSpeed ZeRO-3 (`sharding='deepspeed'`) in forge_nb's own loop under torchrun: gloo on CPU (NCCL + bf16 on GPUs). Two partitioned processes equal one, DeepSpeed checkpoints resume exactly, the final model is a plain Hugging Face folder."
import json, os, shutil, sys
from unittest import mock
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from forge_nb.training import TrainConfig, train, demo_records
from forge_nb.training.precision import estimate_memory, resolve_precision
from forge_nb.training.model import deepspeed_config
from conftest import sharded_and_single, saved_weights, assert_same_plain_hf_model

# the runs of tests/test_training_fsdp.py, full SFT; save_steps=2 leaves a DeepSpeed checkpoint at step 2
BASE = dict(method='full', sharding='deepspeed', max_steps=4, save_steps=2, global_batch_size=8, micro_batch_size=2, lr=1e-4,
            lora_dropout=0.0, track=False, num_threads=1, max_length=128)
# measured on CPU (fp32, gloo), 2 ZeRO-3 ranks vs 1 unsharded process: per-step loss |d| <= 5.7e-7, grad norm <= 1.2e-4
# (of 58.8), final weights <= 1.1e-5 (LoRA: loss 7.4e-7, adapter 5.0e-6); resumed == uninterrupted exactly (same world size)
LOSS_TOL, WEIGHT_TOL = dict(atol=1e-5, rtol=1e-5), dict(atol=1e-4, rtol=1e-4)

def _pair(tmp: Path, recs, ev=None, **over):
    "The run partitioned over 2 torchrun processes (`tmp/ds`) and in one process (`tmp/one`)."
    return sharded_and_single(tmp, {**BASE, **over}, recs, ev, name='ds')

@pytest.fixture(scope='module')
def deepspeed():
    return pytest.importorskip('deepspeed', reason="DeepSpeed is not installed: `make deepspeed` (sharding='deepspeed' needs it)")

@pytest.fixture(scope='module')
def full_pair(deepspeed, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ds_full'); recs = demo_records(48, seed=3)
    return tmp, recs, *_pair(tmp, recs, ev=demo_records(12, seed=7), eval_steps=2)   # every rank evaluates (ZeRO-3 gathers)

def test_deepspeed_two_processes_equal_one(full_pair):
    tmp, recs, job, one = full_pair
    log = '\n'.join(job.logs(None))
    assert 'micro 2 x accum 2 x world 2, DeepSpeed ZeRO-3' in log
    res = json.loads((tmp / 'ds' / 'resolved_config.json').read_text())
    dsc = json.loads((tmp / 'ds' / 'deepspeed_config.json').read_text())       # what the engine was given, beside the run
    assert res['parallel'] == 'deepspeed' and res['deepspeed_config'] == dsc
    assert dsc['zero_optimization'] == {'stage': 3, 'stage3_gather_16bit_weights_on_model_save': True}
    assert (dsc['gradient_accumulation_steps'], dsc['train_micro_batch_size_per_gpu'], dsc['gradient_clipping']) == (1, 2, 1.0)
    assert "sharding='deepspeed' in a single process: training unsharded" in '\n'.join(one.logs(None))
    assert not (tmp / 'one' / 'deepspeed_config.json').exists()
    h2, h1 = job.history(), one.history()
    assert h2.step.tolist() == h1.step.tolist() == [1, 2, 3, 4]
    torch.testing.assert_close(torch.tensor(h2.loss.values), torch.tensor(h1.loss.values), **LOSS_TOL)
    torch.testing.assert_close(torch.tensor(h2.grad_norm.values), torch.tensor(h1.grad_norm.values), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(h2.lr.values), torch.tensor(h1.lr.values), atol=0, rtol=0)   # our scheduler, stepped once
    for col in [c for c in h1.columns if c.startswith('loss/')]:           # per-source losses too
        torch.testing.assert_close(torch.tensor(h2[col].values), torch.tensor(h1[col].values), equal_nan=True, **LOSS_TOL)
    assert any('eval step 2:' in l for l in job.logs(None))
    e2, e1 = job.metrics, one.metrics
    assert e2['eval_loss/customer'] > 0
    for k in [k for k in e1 if k.startswith('eval_loss')]: torch.testing.assert_close(e2[k], e1[k], **LOSS_TOL)   # measured |d| 2.2e-7

def test_deepspeed_final_model_is_a_plain_hf_folder(full_pair):
    tmp, recs, job, one = full_pair
    saved = assert_same_plain_hf_model(job.model_path, one.model_path, **WEIGHT_TOL)
    assert {v.dtype for v in saved.values()} == {torch.float32}

def test_deepspeed_checkpoint_is_partitioned_and_resumes_exactly(full_pair):
    tmp, recs, job, one = full_pair
    ck = tmp / 'ds' / 'checkpoints' / 'step-000002'
    files = {str(f.relative_to(ck)) for f in ck.rglob('*') if f.is_file()}
    per_rank = {f'deepspeed/global_step2/zero_pp_rank_{r}_mp_rank_00_{k}_states.pt' for r in (0, 1) for k in ('model', 'optim')}
    assert per_rank | {'deepspeed/latest', 'rng-0.pt', 'rng-1.pt', 'state.pt'} <= files
    assert 'trainable.pt' not in files and not any(f.startswith('sharded/') for f in files)
    assert json.loads((ck / 'checkpoint.json').read_text()) | {'time': None} == \
        {'step': 2, 'time': None, 'sharded_over': 2, 'sharding': 'deepspeed'}
    ref_h = job.history()
    # resume from the step-2 checkpoint (a copy, its final model removed), partitioned over 2 ranks again: bit-for-bit
    d = tmp / 'resumed2'; shutil.copytree(tmp / 'ds', d); shutil.rmtree(d / 'model')
    again = train(TrainConfig(**BASE, output_dir=str(d)), recs, resume=True, runtime='torchrun', nproc=2).wait(timeout=900)
    assert again.status() == 'completed', '\n'.join(again.logs(80))
    assert 'resumed from step-000002 (step 2)' in '\n'.join(again.logs(None))
    h = again.history()
    assert h.step.tolist() == [1, 2, 3, 4]
    torch.testing.assert_close(torch.tensor(h.loss.values), torch.tensor(ref_h.loss.values), atol=0, rtol=0)
    a, b = saved_weights(job.model_path), saved_weights(again.model_path)
    for k in a: torch.testing.assert_close(b[k], a[k], atol=0, rtol=0)
    # ZeRO-3 partitions load only into as many ranks: one process says so and what to do instead
    d1 = tmp / 'resumed1'; shutil.copytree(tmp / 'ds', d1); shutil.rmtree(d1 / 'model')
    with pytest.raises(ValueError, match=r"partitioned over 2 ranks\): resume it with sharding='deepspeed' on 2 processes, or start a new run"):
        train(TrainConfig(**BASE, output_dir=str(d1)), recs, resume=True, echo=False)
    # ... a new run starts from its weights (DeepSpeed's zero_to_fp32, in this process): those of the one-process run at step 2
    from forge_nb.training.model import build_model, resolve_init
    from forge_nb.training.checkpoints import load_deepspeed_weights
    from forge_nb.core.models import model_ref
    init = resolve_init(tmp / 'ds' / 'checkpoints' / 'step-000002')
    assert (init.kind, init.path) == ('checkpoint', ck.resolve())
    m, *_ = build_model(TrainConfig(method='full'), model_ref(None), 'cpu', use_gc=False, init=init)
    ref = torch.load(tmp / 'one' / 'checkpoints' / 'step-000002' / 'trainable.pt')
    own = dict(m.named_parameters())
    for k, v in ref.items(): torch.testing.assert_close(own[k].detach(), v, **WEIGHT_TOL)

def test_deepspeed_lora_two_processes_equal_one(deepspeed, tmp_path):
    recs = demo_records(48, seed=3)
    job, one = _pair(tmp_path, recs, method='lora', lr=1e-3, gradient_checkpointing=True)   # as on GPUs
    assert 'DeepSpeed ZeRO-3' in '\n'.join(job.logs(None))
    torch.testing.assert_close(torch.tensor(job.history().loss.values), torch.tensor(one.history().loss.values), **LOSS_TOL)
    ck = tmp_path / 'ds' / 'checkpoints' / 'step-000002'
    assert (ck / 'deepspeed' / 'latest').exists() and (ck / 'adapter' / 'adapter_model.safetensors').exists()
    a = load_file(Path(one.model_path) / 'adapter_model.safetensors')
    b = load_file(Path(job.model_path) / 'adapter_model.safetensors')
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(b[k], a[k], atol=5e-5, rtol=1e-3)   # the torchrun (DDP) test's tolerance
    from forge_nb.core.models import load_model           # the adapter folder reloads with peft on its base
    model, _ = load_model(job.model_path)
    assert type(model).__name__.startswith('Peft')
    # the checkpoint leaves the frozen base out (it comes from the model) and still resumes exactly
    assert json.loads((ck / 'checkpoint.json').read_text())['sharding'] == 'deepspeed'
    d = tmp_path / 'resumed'; shutil.copytree(tmp_path / 'ds', d); shutil.rmtree(d / 'adapter')
    again = train(TrainConfig(**{**BASE, 'method': 'lora', 'lr': 1e-3, 'gradient_checkpointing': True}, output_dir=str(d)), recs, resume=True, runtime='torchrun',
                  nproc=2).wait(timeout=900)
    assert again.status() == 'completed', '\n'.join(again.logs(80))
    torch.testing.assert_close(torch.tensor(again.history().loss.values), torch.tensor(job.history().loss.values), atol=0, rtol=0)
    c = load_file(d / 'adapter' / 'adapter_model.safetensors')
    for k in b: torch.testing.assert_close(c[k], b[k], atol=0, rtol=0)

def test_deepspeed_config_errors_and_estimate(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"must be one of \('none', 'fsdp', 'deepspeed'\)"): TrainConfig(sharding='zero3')
    with pytest.raises(ValueError, match="sharding='deepspeed' with method='qlora'"): TrainConfig(sharding='deepspeed', method='qlora')
    with pytest.raises(ValueError, match="sharding='deepspeed' with objective='dpo'"): TrainConfig(sharding='deepspeed', objective='dpo')
    with pytest.raises(ValueError, match="TrainConfig.sharding='deepspeed' runs on 'cuda' or 'cpu'"): TrainConfig(sharding='deepspeed', device='mps')
    assert TrainConfig(sharding='deepspeed', dtype='fp16').sharding == 'deepspeed'       # DeepSpeed's own loss scaler
    assert TrainConfig.from_dict({'sharding': 'deepspeed'}).sharding == 'deepspeed'
    # the plan is pure: ZeRO-3, clipping, the run's precision
    c = deepspeed_config(TrainConfig(max_grad_norm=0.0), 4, 8, resolve_precision(TrainConfig(dtype='bf16'), 'cpu'))
    assert (c['gradient_clipping'], c['bf16'], c['fp16'], c['train_batch_size']) == (0.0, {'enabled': True}, {'enabled': False}, 32)
    # the dry run's memory estimate is per device, partitioned: weights, gradients and optimizer states halve over 2 ranks
    cfg = TrainConfig(**BASE, output_dir=str(tmp_path / 'dry'))
    dr = train(cfg, demo_records(16), runtime='torchrun', nproc=2, dry_run=True)
    est, whole = dr.memory, estimate_memory(cfg, device='cpu', world_size=2, sharded=False)
    assert dr.resolved['sharding'] == 'deepspeed' and (est.weights, est.optimizer) == (whole.weights // 2, whole.optimizer // 2)
    # not installed: a clear error when a run needs it (configs can still be planned anywhere)
    from forge_nb.training.checkpoints import import_deepspeed
    monkeypatch.setitem(sys.modules, 'deepspeed', None)
    with pytest.raises(ImportError, match=r"sharding='deepspeed' needs DeepSpeed.*`make deepspeed` \(or `pip install deepspeed`\)"):
        import_deepspeed('cpu')

def test_deepspeed_fp16_needs_an_accelerator_with_fp16(deepspeed):
    "fp16 runs on DeepSpeed's dynamic loss scale (no GradScaler of ours); an accelerator without fp16 is refused before any engine starts."
    from forge_nb.training.model import init_deepspeed
    from forge_nb.training.checkpoints import import_deepspeed
    cfg = TrainConfig(sharding='deepspeed', method='full', dtype='fp16'); prec = resolve_precision(cfg, 'cpu')
    c = deepspeed_config(cfg, 2, 2, prec)
    assert c['fp16'] == {'enabled': True, 'loss_scale': 0, 'initial_scale_power': 16} and c['bf16'] == {'enabled': False}
    if import_deepspeed('cpu').accelerator.get_accelerator().is_fp16_supported(): pytest.skip("this CPU's DeepSpeed accelerator has fp16")
    with pytest.raises(ValueError, match=r"TrainConfig.dtype='fp16' with sharding='deepspeed': DeepSpeed's cpu accelerator has no fp16"):
        init_deepspeed(torch.nn.Linear(2, 2), None, c, 'cpu')

@pytest.mark.slow
def test_deepspeed_bf16_cpu(deepspeed, tmp_path):
    "DeepSpeed's bf16 (the model in bf16, fp32 master partitions, no autocast) on CPU: what the GPU runs use."
    job, one = _pair(tmp_path, demo_records(48, seed=3), dtype='bf16')
    _check_bf16(tmp_path, job, one)

def _check_bf16(tmp: Path, job, one):
    assert '(sft, bf16)' in '\n'.join(job.logs(None))
    assert json.loads((tmp / 'ds' / 'deepspeed_config.json').read_text())['bf16'] == {'enabled': True}
    h2, h1 = job.history(), one.history()
    # step 1, before any update: bf16 everywhere (norms, embeddings, residual stream) against autocast, measured |d loss| 0.022
    assert abs(h2.loss[0] - h1.loss[0]) < 3e-2 and abs(h2.grad_norm[0] - h1.grad_norm[0]) < 0.1 * h1.grad_norm[0]
    # later steps differ more: DeepSpeed's fp32 masters start from the bf16 weights and the forward pass sees a weight's update
    # only once it passes half a bf16 ulp (at lr 1e-4 the tiny model's loss ends 0.52 above the autocast run's); it still learns
    assert h2.loss.iloc[-1] < 0.5 * h2.loss.iloc[0]
    path = Path(job.model_path); saved = load_file(path / 'model.safetensors')
    assert {v.dtype for v in saved.values()} == {torch.float32}          # the fp32 masters, not the model's bf16 copies ...
    assert any((v != v.bfloat16().float()).any() for v in saved.values())
    assert json.loads((path / 'config.json').read_text())['dtype'] == 'float32'   # ... and config.json says so
    a, b = saved_weights(one.model_path), saved_weights(path)
    for k in a: torch.testing.assert_close(b[k], a[k], atol=1e-2, rtol=0)          # measured max |d| 4.1e-3
    ck = tmp / 'ds' / 'checkpoints' / 'step-000002' / 'deepspeed' / 'global_step2'
    assert {f'bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt' for r in (0, 1)} <= {f.name for f in ck.iterdir()}

def _one_rank_roundtrip(backend: str, dev, tmp: Path):
    "In this process: a DeepSpeed bf16 engine over a one-rank group trains, checkpoints and reloads exactly (the GPU test's body)."
    import torch.distributed as dist
    from forge_nb.core.models import model_ref
    from forge_nb.training.model import build_model, make_optimizer, init_deepspeed
    from forge_nb.training.checkpoints import save_checkpoint, load_checkpoint, full_state_dict, is_deepspeed
    cfg = TrainConfig(method='full', dtype='bf16', lr=1e-3, sharding='deepspeed'); prec = resolve_precision(cfg, dev)
    x = torch.arange(1, 33, device=dev)[None]
    def engine():
        m, *_ = build_model(cfg, model_ref(None), dev, use_gc=False, prec=prec)
        _, opt, sched = make_optimizer(m, cfg, 1e-3, 10)
        return init_deepspeed(m, opt, deepspeed_config(cfg, 1, 1, prec), dev), opt, sched
    with mock.patch.dict(os.environ, LOCAL_RANK='0', RANK='0', WORLD_SIZE='1'):     # what torchrun sets
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        try:
            eng, opt, sched = engine(); assert is_deepspeed(eng)
            losses = []
            for _ in range(3):
                eng.set_gradient_accumulation_boundary(True)
                loss = eng(input_ids=x, labels=x).loss; eng.backward(loss); eng.step(); sched.step(); losses.append(float(loss))
            assert losses[-1] < losses[0], losses
            ck = save_checkpoint(tmp, 3, eng, opt, sched)
            full = full_state_dict(eng)
            assert {v.dtype for v in full.values()} == {torch.float32} and 'lm_head.weight' not in full
            eng2, opt2, sched2 = engine()
            assert load_checkpoint(ck, eng2, opt2, sched2) == 3 and sched2.state_dict()['last_epoch'] == 3
            full2 = full_state_dict(eng2)
            for k in full: torch.testing.assert_close(full2[k], full[k], atol=0, rtol=0)
        finally: dist.destroy_process_group()

# --- the same on GPUs: NCCL, DeepSpeed bf16 ---

@pytest.mark.gpu
@pytest.mark.slow
def test_deepspeed_cuda_nccl_bf16_two_processes_equal_one(deepspeed, tmp_path):
    if torch.cuda.device_count() < 2: pytest.skip('needs 2 GPUs: NCCL runs one rank per GPU')
    job, one = _pair(tmp_path, demo_records(48, seed=3), dtype='bf16')
    assert 'DeepSpeed ZeRO-3' in '\n'.join(job.logs(None)) and 'device=cuda' in '\n'.join(job.logs(None))
    _check_bf16(tmp_path, job, one)

@pytest.mark.gpu
def test_deepspeed_cuda_one_rank_bf16_step_and_checkpoint(deepspeed, tmp_path):
    if not torch.cuda.is_available(): pytest.skip('needs a CUDA GPU')
    _one_rank_roundtrip('nccl', torch.device('cuda', 0), tmp_path)
