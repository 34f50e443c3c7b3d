"Attention kernels and Liger: the same losses whichever packed attention runs; what cannot run here fails before training with the reason."
import importlib.util, json
from pathlib import Path
import pytest, torch
from forge_nb.training import TrainConfig, train, demo_records
from forge_nb.training.kernels import attention_for

def fast(tmp_path, name='run', **kw):
    d = dict(max_steps=3, global_batch_size=8, micro_batch_size=8, lr=1e-3, output_dir=str(tmp_path / name), track=False,
             num_threads=1, max_length=128, seed=0)
    return TrainConfig(**{**d, **kw})

def losses(job): return list(job.history().loss)

def resolved(job): return json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())

def test_packed_sdpa_and_block_causal_sdpa_train_the_same(tmp_path):
    "forge_nb's packed SDPA (segments as a batch) and SDPA with transformers' block-causal mask: same per-step losses, each sample sees only itself."
    recs = demo_records(32)
    a = train(fast(tmp_path, 'packed', attn_implementation='auto'), recs, echo=False)
    b = train(fast(tmp_path, 'sdpa', attn_implementation='sdpa'), recs, echo=False)
    assert resolved(a)['attn_implementation'] == 'forge_packed' and resolved(b)['attn_implementation'] == 'sdpa'
    assert resolved(a)['packing'] and resolved(b)['packing']
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) == 3 and la[-1] != la[0]
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-5, (la, lb)

def test_auto_on_cpu_never_asks_for_flash_attention():
    assert attention_for(TrainConfig(), 'cpu', packed=True) == 'forge_packed'
    assert attention_for(TrainConfig(dtype='bf16'), 'cpu', packed=False) == 'sdpa'

@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU refusals')
def test_gpu_only_kernels_fail_before_training_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match=r"TrainConfig.liger=True: Liger's Triton kernels need a CUDA GPU; this run computes on cpu"):
        train(fast(tmp_path, 'liger', liger=True), demo_records(16), echo=False)
    with pytest.raises(ValueError, match=r"attn_implementation='flash_attention_2' needs a CUDA GPU"):
        train(fast(tmp_path, 'fa2', attn_implementation='flash_attention_2'), demo_records(16), echo=False)
    assert not (tmp_path / 'liger' / 'checkpoints').exists()
    with pytest.raises(ValueError, match='attn_implementation'): TrainConfig(attn_implementation='flash')

@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec('flash_attn') is None, reason='needs flash-attn (pip install flash-attn --no-build-isolation)')
def test_flash_attention_varlen_matches_packed_sdpa_on_cuda(tmp_path):
    recs = demo_records(32)
    a = train(fast(tmp_path, 'fa2', device='cuda', dtype='bf16'), recs, echo=False)
    b = train(fast(tmp_path, 'packed', device='cuda', dtype='bf16', attn_implementation='packed'), recs, echo=False)
    assert resolved(a)['attn_implementation'] == 'flash_attention_2' and resolved(b)['attn_implementation'] == 'forge_packed'
    assert max(abs(x - y) for x, y in zip(losses(a), losses(b))) < 0.05     # bf16 kernels: different summation order

@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec('liger_kernel') is None, reason="needs liger-kernel (pip install 'forge_nb[gpu]')")
def test_liger_kernels_train_like_the_plain_model_on_cuda(tmp_path):
    recs = demo_records(32)
    a = train(fast(tmp_path, 'liger', device='cuda', dtype='bf16', liger=True), recs, echo=False)
    b = train(fast(tmp_path, 'plain', device='cuda', dtype='bf16'), recs, echo=False)
    assert resolved(a)['liger'] is True
    assert max(abs(x - y) for x, y in zip(losses(a), losses(b))) < 0.05
