"Precision and memory: dtype resolution and validation, bf16/fp16 runs on CPU, the memory estimate against a measured peak, QLoRA on CUDA."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from forge_nb.training import TrainConfig, train, demo_records, estimate_memory
from forge_nb.training.precision import resolve_precision
from forge_nb.core.embedded import tiny_model_path

def fast(tmp_path, name='run', **kw):
    d = dict(max_steps=2, global_batch_size=8, lr=1e-3, output_dir=str(tmp_path / name), track=False, num_threads=1, max_length=128)
    return TrainConfig(**{**d, **kw})

def test_validation_names_the_field():
    with pytest.raises(ValueError, match="TrainConfig.method='qlora' needs a CUDA GPU"): TrainConfig(method='qlora', device='cpu')
    with pytest.raises(ValueError, match='contradicts TrainConfig.dtype'): TrainConfig(dtype='fp16', bf16=True)
    with pytest.raises(ValueError, match="TrainConfig.dtype must be"): TrainConfig(method='qlora', dtype='fp32')
    with pytest.raises(ValueError, match="only applies to method='lora' or 'qlora'"): TrainConfig(method='full', modules_to_save='embeddings')
    with pytest.raises(ValueError, match="objective='dpo'"): TrainConfig(objective='dpo', packing=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA GPU"): resolve_precision(TrainConfig(method='qlora'), 'cpu')
    # the CPU default stays fp32 (the demo's numbers do not move); bf16 only when asked
    assert resolve_precision(TrainConfig(), 'cpu').name == 'fp32' and resolve_precision(TrainConfig(), 'cpu').autocast is None
    p = resolve_precision(TrainConfig(method='full', dtype='bf16'), 'cpu')
    assert (p.weights, p.autocast, p.scaler) == (torch.float32, torch.bfloat16, False)     # full: fp32 masters under autocast
    assert resolve_precision(TrainConfig(dtype='fp16'), 'cpu').scaler

def test_bf16_lora_on_cpu_keeps_trainable_weights_fp32(tmp_path):
    job = train(fast(tmp_path, dtype='bf16'), demo_records(32), echo=False)
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['dtype'] == 'bf16' and rc['bf16'] is True
    from safetensors.torch import load_file
    assert {t.dtype for t in load_file(Path(job.model_path) / 'adapter_model.safetensors').values()} == {torch.float32}
    h = job.history(); assert h.loss.notna().all() and (h.grad_norm > 0).all()
    assert 'memory per device' in '\n'.join(job.logs(None))
    assert job.metrics['peak_memory_mb'] > 0 and job.metrics['memory_estimate_mb'] > 0

def test_fp16_runs_with_a_grad_scaler_whose_state_is_checkpointed(tmp_path):
    job = train(fast(tmp_path, dtype='fp16', max_steps=3, save_steps=2), demo_records(32), echo=False)
    assert job.status() == 'completed'
    st = torch.load(Path(job.checkpoints[-1]) / 'state.pt', weights_only=False)
    assert st['scaler'] is not None and st['scaler']['scale'] > 0
    again = train(fast(tmp_path, dtype='fp16', max_steps=3, save_steps=2), demo_records(32), resume=True, echo=False)
    assert again.history().step.tolist() == [1, 2, 3]

def test_dry_run_shows_the_estimate(tmp_path):
    dr = train(fast(tmp_path, method='full'), demo_records(32), dry_run=True)
    assert dr.memory.total == dr.memory.weights + dr.memory.gradients + dr.memory.optimizer + dr.memory.activations
    assert dr.memory.trainable == dr.memory.params and 'memory per device' in dr._repr_markdown_()

PROBE = textwrap.dedent('''
    import json, shutil, sys
    from pathlib import Path
    import torch
    from transformers import LlamaConfig, AutoModelForCausalLM
    from forge_nb.core.embedded import tiny_model_path
    from forge_nb.training import TrainConfig, demo_records
    from forge_nb.training.engine import run_training
    d = Path(sys.argv[1]); kw = json.loads(sys.argv[2])
    if not (d / 'model' / 'config.json').exists():
        torch.manual_seed(0); tiny = json.load(open(tiny_model_path() / 'config.json'))
        c = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4,
                        vocab_size=tiny['vocab_size'], tie_word_embeddings=True, bos_token_id=tiny['bos_token_id'],
                        eos_token_id=tiny['eos_token_id'], pad_token_id=tiny['pad_token_id'])
        AutoModelForCausalLM.from_config(c).save_pretrained(d / 'model')
        for f in tiny_model_path().iterdir():
            if 'token' in f.name or f.suffix == '.jinja': shutil.copy(f, d / 'model' / f.name)
    cfg = TrainConfig(model=str(d / 'model'), max_steps=2, global_batch_size=16, max_length=128, track=False, num_threads=1,
                      output_dir=str(d / 'run'), lr=1e-4, **kw)
    st = run_training(cfg, demo_records(64, seed=0), echo=False)
    print(json.dumps({k: st['metrics'][k] for k in ('memory_estimate_mb', 'peak_memory_mb')}))
''')

@pytest.mark.slow
@pytest.mark.parametrize('kw', [{}, {'method': 'full'}, {'method': 'full', 'dtype': 'bf16'}], ids=['lora-fp32', 'full-fp32', 'full-bf16'])
def test_memory_estimate_matches_the_measured_peak(tmp_path, kw):
    "A real CPU run of a 20M-parameter model in a fresh process: measured peak within 30% of `estimate_memory`."
    out = subprocess.run([sys.executable, '-c', PROBE, str(tmp_path), json.dumps(kw)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.7 <= r['peak_memory_mb'] / r['memory_estimate_mb'] <= 1.3, r

@pytest.mark.gpu
def test_qlora_on_cuda(tmp_path):
    job = train(fast(tmp_path, method='qlora', device='cuda'), demo_records(32), echo=False)
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['method'] == 'qlora' and rc['dtype'] in ('bf16', 'fp16') and job.history().loss.notna().all()
    from forge_nb.training.model import build_model
    m, *_ = build_model(TrainConfig(method='qlora'), str(tiny_model_path()), 'cuda', use_gc=True)
    assert type(m.get_base_model().model.layers[0].mlp.up_proj.base_layer).__name__ == 'Linear4bit'
    e = estimate_memory(TrainConfig(method='qlora', max_length=128), device='cuda')
    assert e.weights < estimate_memory(TrainConfig(max_length=128), device='cuda').weights

@pytest.mark.gpu
def test_bf16_lora_on_cuda_memory_within_estimate(tmp_path):
    job = train(fast(tmp_path, device='cuda'), demo_records(32), echo=False)
    assert json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())['dtype'] in ('bf16', 'fp16')
    assert job.metrics['peak_memory_mb'] <= 1.5 * job.metrics['memory_estimate_mb']
