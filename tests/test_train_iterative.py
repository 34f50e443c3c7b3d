"Iterative and exportable: start from an earlier run's adapter, full model or checkpoint (local or s3://); merge an adapter for serving."
import json
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from forge_nb.training import TrainConfig, train, demo_records, merge_adapter, load_model
from forge_nb.training.model import resolve_init, build_model, base_ref
from forge_nb.core.models import model_ref

def fast(tmp_path, name, **kw):
    d = dict(max_steps=2, global_batch_size=8, lr=1e-2, output_dir=str(tmp_path / name), track=False, num_threads=1, max_length=128,
             lora_dropout=0.0)
    return TrainConfig(**{**d, **kw})

@pytest.fixture(scope='module')
def first(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('first')
    return train(fast(tmp, 'lora', save_steps=1), demo_records(32), echo=False)

def test_resolve_init_kinds(first, tmp_path):
    run = Path(first.output_dir)
    assert resolve_init(run).kind == 'adapter' and resolve_init(run).path == run / 'adapter'
    assert resolve_init(run).base == model_ref(None)
    assert resolve_init(first.checkpoints[-1]).kind == 'adapter'          # a LoRA checkpoint holds its adapter
    assert resolve_init(model_ref(None)).kind == 'model'
    with pytest.raises(ValueError, match='TrainConfig.init_from'): resolve_init(tmp_path)

def test_lora_run_continues_from_an_adapter(first, tmp_path):
    cfg = fast(tmp_path, 'second', init_from=first.output_dir)
    init = resolve_init(cfg.init_from)
    m, _, targets, _ = build_model(cfg, base_ref(cfg, init), 'cpu', False, init=init)
    a = load_file(Path(first.model_path) / 'adapter_model.safetensors')
    got = {n: p for n, p in m.named_parameters() if 'lora_' in n}
    for k, v in a.items():                                  # the adapter's weights, loaded trainable
        name = next(n for n in got if n.replace('.default', '').endswith(k.split('base_model.model.', 1)[1]))
        torch.testing.assert_close(got[name].detach(), v)
    assert all(p.requires_grad for p in got.values())
    job = train(cfg, demo_records(32, seed=5), echo=False)
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['init_from'].startswith('adapter:') and rc['model'] == model_ref(None)
    # it starts where the first run ended: its first loss is below the base model's first loss on the same data
    fresh = train(fast(tmp_path, 'fresh'), demo_records(32, seed=5), echo=False)
    assert job.history().loss.iloc[0] < fresh.history().loss.iloc[0]

def test_full_run_from_a_full_model_and_from_an_adapter(first, tmp_path):
    full = train(fast(tmp_path, 'full', method='full', lr=1e-4, save_steps=1), demo_records(32), echo=False)
    assert resolve_init(full.output_dir).kind == 'model' and resolve_init(full.checkpoints[-1]).kind == 'checkpoint'
    for name, src in (('from-model', full.output_dir), ('from-ckpt', full.checkpoints[-1]), ('from-adapter', first.output_dir)):
        cfg = fast(tmp_path, name, method='full', lr=1e-4, init_from=str(src))
        init = resolve_init(cfg.init_from)
        m, *_ = build_model(cfg, base_ref(cfg, init), 'cpu', False, init=init)
        ref = load_model(full.model_path if name != 'from-adapter' else first.model_path, merge=True)[0]
        if name == 'from-ckpt':   # the checkpoint after step 1, not the final model: compare with its saved weights
            saved = torch.load(Path(src) / 'trainable.pt')
            for n, p in m.named_parameters(): torch.testing.assert_close(p.detach(), saved[n])
        else:
            for (n, p), q in zip(m.named_parameters(), ref.parameters()): torch.testing.assert_close(p.detach(), q, atol=1e-6, rtol=1e-5)
    assert train(cfg, demo_records(32), echo=False).status() == 'completed'

def test_init_from_s3(first, tmp_path, monkeypatch):
    from moto import mock_aws
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_DEFAULT_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    with mock_aws():
        import boto3
        from forge_nb.core.storage import upload_path
        boto3.client('s3', region_name='us-east-1').create_bucket(Bucket='runs')
        upload_path(first.model_path, 's3://runs/first/adapter')
        job = train(fast(tmp_path, 's3', init_from='s3://runs/first/adapter'), demo_records(32), echo=False)
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['init_from'].startswith('adapter:') and str(tmp_path / 's3' / 'init') in rc['init_from']

def test_merge_adapter_gives_a_plain_folder_with_equal_logits(first, tmp_path):
    from transformers import AutoModelForCausalLM
    out = merge_adapter(first.output_dir, tmp_path / 'merged')
    assert (out / 'model.safetensors').exists() and (out / 'tokenizer.json').exists() and not (out / 'adapter_config.json').exists()
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    peft_model, tok = load_model(first.model_path)
    x = tok.apply_chat_template([{'role': 'user', 'content': 'What is 2 + 3?'}], add_generation_prompt=True, return_tensors='pt', return_dict=True)
    with torch.no_grad(): torch.testing.assert_close(plain(**x).logits, peft_model(**x).logits, atol=1e-4, rtol=1e-4)
    assert AutoModelForCausalLM.from_pretrained(merge_adapter(first.output_dir, tmp_path / 'bf16', dtype='bf16')).dtype == torch.bfloat16
