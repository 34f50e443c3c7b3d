"Training stage: config validation, assistant-only masks, packing isolation, LoRA and full SFT in-process, load_model, dry run."
import json, copy
from pathlib import Path
import pytest, torch
from forge_nb.training.config import TrainConfig, config_table, plan, demo_records
from forge_nb.training.engine import step_indices
from forge_nb.training.launch import train, run_spec
from forge_nb.training.jobs import TrainJob
from forge_nb.core.jobs import Job
from forge_nb.core.models import load_model
from forge_nb.core.records import data_fingerprint
from forge_nb.training.packing import (tokenize_chat, collate, token_losses, register_packed_attention, demo_model_path,
                              ChatTemplateError, has_generation_markers, PACKED_ATTN)

@pytest.fixture(scope='module')
def tok():
    from forge_nb.core.models import load_tokenizer
    return load_tokenizer(demo_model_path())

@pytest.fixture(scope='module')
def recs(): return demo_records(48, seed=1)

MULTI = {'messages': [{'role': 'system', 'content': 'You are terse.'},
                      {'role': 'user', 'content': 'What is 2 + 2?'}, {'role': 'assistant', 'content': 'It is 4.'},
                      {'role': 'user', 'content': 'And 3 + 5?'}, {'role': 'assistant', 'content': 'It is 8, of course.'}],
         'source': 'math'}

def fast(tmp_path, **kw):
    d = dict(max_steps=3, global_batch_size=8, lr=1e-3, output_dir=str(tmp_path / 'run'), track=False, num_threads=1, max_length=128)
    return TrainConfig(**{**d, **kw})

# ---- config ----
def test_config_ranges_and_keys():
    df = config_table()
    for k in ('lr', 'warmup_steps', 'global_batch_size', 'max_length', 'max_steps', 'epochs', 'save_steps', 'lora_r',
              'lora_alpha', 'lora_dropout', 'target_modules'):
        assert k in df.index
    assert df.loc['lora_r', 'range'] == '[1, 1024]'
    with pytest.raises(ValueError, match='TrainConfig.lora_dropout=1.5'): TrainConfig(lora_dropout=1.5)
    with pytest.raises(ValueError, match='TrainConfig.max_steps=2.5'): TrainConfig(max_steps=2.5)
    with pytest.raises(ValueError, match="did you mean 'lora_alpha'"): TrainConfig.from_dict({'alpha': 32})
    with pytest.raises(ValueError, match='warmup_steps=5'): TrainConfig(max_steps=3, warmup_steps=5)
    with pytest.raises(ValueError, match='target_modules'): TrainConfig(target_modules=[])
    assert TrainConfig(global_batch_size=64, micro_batch_size=8).grad_accum(2) == (8, 4)
    assert TrainConfig(global_batch_size=12, micro_batch_size=8).grad_accum(1) == (6, 2)
    p = plan(TrainConfig(global_batch_size=8, epochs=2), 20)
    assert (p['steps_per_epoch'], p['total_steps']) == (2, 4)
    with pytest.raises(ValueError, match='fewer than TrainConfig.global_batch_size=8'): plan(TrainConfig(), 5)

def test_data_order_is_a_function_of_seed_and_step():
    a = [step_indices(s, 20, 8, 0) for s in range(4)]
    assert a == [step_indices(s, 20, 8, 0) for s in range(4)]
    assert len(set(a[0]) | set(a[1])) == 16 and a[0] != a[2]      # epoch 2 reshuffles
    assert a != [step_indices(s, 20, 8, 1) for s in range(4)]

# ---- assistant-only masks ----
def test_assistant_mask_decodes_to_assistant_turns(tok):
    assert has_generation_markers(tok)
    s = tokenize_chat(MULTI, tok)
    ids, mask = s['input_ids'], s['assistant_mask']
    assert 0 < sum(mask) < len(mask)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == 'It is 4.<|im_end|>It is 8, of course.<|im_end|>'
    untrained = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert 'You are terse.' in untrained and 'What is 2 + 2?' in untrained and 'It is' not in untrained
    # the shifted targets of a collated batch are exactly the assistant tokens
    b = collate([s], packed=True)
    tgt = b['targets'][0]; assert tok.decode(tgt[tgt != -100].tolist()) == trained

def test_template_without_generation_markers(tok):
    plain = copy.deepcopy(tok)
    plain.chat_template = ("{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
                           "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}")
    assert not has_generation_markers(plain)
    assert tokenize_chat(MULTI, plain) == tokenize_chat(MULTI, tok)
    # a template that rewrites earlier turns cannot be located: loud failure, never an all-ones mask
    drop = copy.deepcopy(tok)
    drop.chat_template = ("{%- for message in messages %}{%- if message['role'] != 'assistant' or loop.last %}"
                          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endif %}{%- endfor %}"
                          "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}")
    with pytest.raises(ChatTemplateError, match='prefix-consistently'): tokenize_chat(MULTI, drop)
    # generation markers around everything: the all-ones trap is caught
    allones = copy.deepcopy(tok)
    allones.chat_template = ("{% generation %}{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
                             "'<|im_end|>\n' }}{%- endfor %}{% endgeneration %}")
    with pytest.raises(ChatTemplateError, match='all ones'): tokenize_chat(MULTI, allones)

def test_truncation_and_bad_records(tok):
    long = {'messages': [{'role': 'user', 'content': 'word ' * 200}, {'role': 'assistant', 'content': 'ok'}]}
    assert tokenize_chat(long, tok, max_length=32) is None          # nothing left to learn: dropped
    with pytest.raises(ValueError, match=r'row 7.*messages\[1\]'):
        tokenize_chat({'messages': [{'role': 'user', 'content': 'x'}, {'role': 'bot', 'content': 'y'}]}, tok, row=7)

# ---- packing ----
@pytest.mark.parametrize('impl', [PACKED_ATTN, 'sdpa'])
def test_packing_has_no_cross_contamination(tok, recs, impl):
    from transformers import AutoModelForCausalLM
    register_packed_attention()
    m = AutoModelForCausalLM.from_pretrained(demo_model_path(), attn_implementation=impl).eval()
    samples = [tokenize_chat(r, tok) for r in recs[:6]]
    with torch.no_grad():
        together = token_losses(m, collate(samples, packed=True))[0]
        alone = torch.cat([token_losses(m, collate([s], packed=True))[0] for s in samples])
        # changing one sample's tokens must not change any other sample's losses
        s2 = [dict(s) for s in samples]; s2[0] = {**s2[0], 'input_ids': [5] * len(s2[0]['input_ids'])}
        other = token_losses(m, collate(s2, packed=True))[0]
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    n0 = len(samples[0]['input_ids'])
    torch.testing.assert_close(other[n0:], together[n0:], atol=1e-5, rtol=1e-5)
    b = collate(samples, packed=True)
    assert b['position_ids'][0, :n0].tolist() == list(range(n0)) and b['position_ids'][0, n0] == 0

# ---- training ----
def test_lora_training_in_process(tmp_path, recs):
    job = train(fast(tmp_path, save_steps=2, max_steps=4, warmup_steps=1), recs[:40], eval_data=recs[40:], echo=False)
    assert job.status() == 'completed' and job.runtime == 'local'
    h = job.history()
    assert h.step.tolist() == [1, 2, 3, 4]
    srcs = {c for c in h.columns if c.startswith('loss/')}
    assert srcs == {'loss/customer', 'loss/math', 'loss/chat'}
    # the total loss is the token-weighted mean of the per-source losses: it lies between them
    row = h.iloc[0]; vals = [row[c] for c in srcs if row[c] == row[c]]
    assert min(vals) - 1e-6 <= row['loss'] <= max(vals) + 1e-6
    assert h.lr.iloc[0] == 0.0 and h.lr.iloc[1] > 0          # warm-up from 0
    assert (h.grad_norm > 0).all() and (h.tokens_per_s > 0).all()
    assert 'eval_loss' in job.metrics and 'eval_loss/customer' in job.metrics
    mp = Path(job.model_path); assert mp.name == 'adapter' and (mp / 'adapter_model.safetensors').exists()
    cfg = json.loads((mp / 'adapter_config.json').read_text())
    assert sorted(cfg['target_modules']) == sorted(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'])
    assert [Path(c).name for c in job.checkpoints] == ['step-000002']
    model, t = load_model(job.model_path, merge=True)
    assert type(model).__name__ == 'LlamaForCausalLM' and t.eos_token == '<|im_end|>'
    out = model.generate(**t.apply_chat_template([{'role': 'user', 'content': 'hi'}], add_generation_prompt=True,
                                                 return_tensors='pt', return_dict=True), max_new_tokens=3)
    assert out.shape[1] > 3
    j = Job.load(job.dump(tmp_path / 'h.json'))
    assert type(j) is TrainJob and j.result().model_path == job.model_path
    assert (j.status(), j.model_path, j.metrics) == ('completed', job.model_path, job.metrics)

def test_full_sft_and_padded_path(tmp_path, recs):
    job = train(fast(tmp_path, method='full', lr=1e-4, packing=False), recs, echo=False)
    mp = Path(job.model_path); assert mp.name == 'model' and (mp / 'model.safetensors').exists()
    model, _ = load_model(mp)
    base, _ = load_model(demo_model_path())
    diff = sum((a - b).abs().sum().item() for a, b in zip(model.parameters(), base.parameters()))
    assert diff > 0
    assert json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())['packing'] is False

def test_lora_overrides_reach_peft(tmp_path, recs):
    job = train(fast(tmp_path, max_steps=1, lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=['q_proj', 'v_proj']), recs, echo=False)
    c = json.loads((Path(job.model_path) / 'adapter_config.json').read_text())
    assert (c['r'], c['lora_alpha'], c['lora_dropout'], sorted(c['target_modules'])) == (4, 8, 0.0, ['q_proj', 'v_proj'])

def test_lora_with_trainable_embeddings(tmp_path, recs):
    "modules_to_save='embeddings': the (tied) embedding matrix trains beside the adapters, stays tied, and reloads."
    with pytest.raises(ValueError, match="only applies to method='lora'"): TrainConfig(method='full', modules_to_save='embeddings')
    with pytest.raises(ValueError, match='modules_to_save'): TrainConfig(modules_to_save='everything')
    job = train(fast(tmp_path, max_steps=2, lr=1e-2, modules_to_save='embeddings'), recs, echo=False)
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    base, _ = load_model(demo_model_path())
    emb0 = base.get_input_embeddings().weight
    assert rc['modules_to_save'] == ['embed_tokens'] and rc['trainable_params'] > emb0.numel()
    assert 'embed_tokens' in json.loads((Path(job.model_path) / 'adapter_config.json').read_text())['modules_to_save']
    model, _ = load_model(job.model_path, merge=True)
    emb = model.get_input_embeddings().weight
    assert not torch.equal(emb, emb0)                                    # trained ...
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()   # ... and still tied to the output layer

def test_embedding_modules_of_an_untied_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    from forge_nb.training.lora import embedding_modules, lora_config
    kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, vocab_size=100)
    assert embedding_modules(LlamaForCausalLM(LlamaConfig(**kw, tie_word_embeddings=False))) == (['embed_tokens', 'lm_head'], False)
    tied = LlamaForCausalLM(LlamaConfig(**kw, tie_word_embeddings=True))
    assert embedding_modules(tied) == (['embed_tokens'], True)
    lc = lora_config(tied, TrainConfig(modules_to_save='embeddings', lora_r=4))
    assert (lc.r, lc.modules_to_save, lc.ensure_weight_tying) == (4, ['embed_tokens'], True)

def test_dry_run_writes_nothing(tmp_path, recs):
    dr = train(fast(tmp_path, global_batch_size=16, micro_batch_size=4), recs, runtime='subprocess', dry_run=True)
    assert not (tmp_path / 'run').exists()
    assert dr.resolved['grad_accum'] == 4 and dr.resolved['world_size'] == 1 and dr.resolved['packing'] is True
    assert dr.command[-2:] == ['--config', str(tmp_path / 'run' / 'job.json')]
    assert '--config' in dr._repr_markdown_()

def test_run_spec(tmp_path, recs):
    "What `forge-nb train` calls: a flat config file, overrides, dry run, errors naming the file and field."
    from forge_nb.core.records import write_records
    data = write_records(recs, tmp_path / 'train.jsonl')
    cfgf = tmp_path / 'cfg.json'; cfgf.write_text(json.dumps({'max_steps': 2, 'track': False, 'num_threads': 1, 'train_data': str(data)}))
    assert run_spec(cfgf, dry_run=True, overrides={'lr': 0.001})['lr'] == 0.001
    with pytest.raises(ValueError, match='cfg.json: TrainConfig.lr=5'): run_spec(cfgf, overrides={'lr': 5})
    with pytest.raises(ValueError, match='nope.json: no such file'): run_spec(tmp_path / 'nope.json')
    (tmp_path / 'bad.json').write_text('{"lr": ')
    with pytest.raises(ValueError, match=r'bad.json:1: not valid JSON'): run_spec(tmp_path / 'bad.json')
    with pytest.raises(ValueError, match='no train_data'): run_spec(_flat(tmp_path, {'max_steps': 1}))
    with pytest.raises(ValueError, match='eval_data .*missing.jsonl: no such file'): run_spec(cfgf, eval_data=tmp_path / 'missing.jsonl')
    with pytest.raises(ValueError, match="unknown training override 'learning_rate'"): run_spec(cfgf, overrides={'learning_rate': 1})
    st = run_spec(cfgf, output_dir=tmp_path / 'o', echo=False)
    assert (st['state'], st['step']) == ('completed', 2)
    st = json.loads((tmp_path / 'o' / 'status.json').read_text())
    assert st['state'] == 'completed' and st['step'] == 2

def _flat(tmp_path, d):
    p = tmp_path / 'flat.json'; p.write_text(json.dumps(d)); return p

ARCHS = {'gpt2': dict(n_embd=64, n_layer=2, n_head=2, vocab_size=300, bos_token_id=0, eos_token_id=1),
         'qwen2': dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=300),
         'phi3': dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2),
         'gpt_neox': dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=300)}

@pytest.mark.parametrize('arch', list(ARCHS))
def test_other_architectures_pack_cleanly_and_get_lora_targets(arch):
    "Packing isolation and per-architecture LoRA targets on random tiny models of other families."
    from transformers import AutoConfig, AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    from forge_nb.training.packing import supports_packing
    from forge_nb.training.lora import lora_targets, LORA_TARGETS
    register_packed_attention()
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, **ARCHS[arch])).eval()
    assert supports_packing(m, 512)
    m.set_attn_implementation(PACKED_ATTN)
    samples = [{'input_ids': torch.randint(5, 290, (n,)).tolist(), 'assistant_mask': [1] * n, 'source': 'a'} for n in (7, 12, 5)]
    with torch.no_grad():
        together = token_losses(m, collate(samples))[0]
        alone = torch.cat([token_losses(m, collate([s]))[0] for s in samples])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    t = lora_targets(m)
    assert t == LORA_TARGETS[arch]
    pm = get_peft_model(m, LoraConfig(r=2, target_modules=t))
    assert sum(p.numel() for p in pm.parameters() if p.requires_grad) > 0

def test_packing_refused_where_it_would_leak():
    "Models whose attention cannot be packed cleanly (no backend support, softcapping, short sliding windows) are not packed."
    from transformers import AutoConfig, AutoModelForCausalLM
    from forge_nb.training.packing import supports_packing
    falcon = AutoModelForCausalLM.from_config(AutoConfig.for_model('falcon', hidden_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=100))
    assert not supports_packing(falcon)
    gemma2 = AutoModelForCausalLM.from_config(AutoConfig.for_model('gemma2', hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                                   num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=100))
    assert not supports_packing(gemma2)                                   # logit softcapping
    mistral = AutoModelForCausalLM.from_config(AutoConfig.for_model('mistral', hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                                    num_attention_heads=2, num_key_value_heads=1, vocab_size=100, sliding_window=256))
    assert supports_packing(mistral, max_length=256) and not supports_packing(mistral, max_length=512)

def test_bad_record_error_names_file_row_and_field(tmp_path, recs):
    from forge_nb.core.records import write_records
    bad = recs[:10] + [{'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 3}]}]
    path = write_records(bad, tmp_path / 'bad.jsonl')
    with pytest.raises(ValueError, match=r'bad\.jsonl: record \(row 10\): messages\[1\] needs role'):
        train(fast(tmp_path), path, echo=False)

def test_mixer_batches_reach_the_optimizer_intact(tmp_path):
    "Training from a mix keeps the mixer's order, so every optimizer step holds the requested shares exactly."
    from forge_nb.mixing import MixConfig, mix
    from forge_nb.core.embedded import domain_rows, tiny_model_path
    cust = [{'messages': [{'role': 'user', 'content': r['question']}, {'role': 'assistant', 'content': r['answer']}]}
            for r in domain_rows(40)]
    m = mix(cust, MixConfig(customer_data_percent=50, weights={'math': 50, 'chat': 50}), n_examples=32, batch_size=8, seed=1)
    job = train(TrainConfig(model=str(tiny_model_path()), max_steps=4, global_batch_size=8, output_dir=str(tmp_path / 'run'),
                            track=False), m.records, mix=m, echo=False)
    import json
    rows = [json.loads(l) for l in open(tmp_path / 'run' / 'metrics.jsonl')]
    assert len(rows) == 4 and all(r['samples'] == {'customer': 4, 'math': 2, 'chat': 2} for r in rows)
    assert json.loads(open(tmp_path / 'run' / 'resolved_config.json').read())['shuffle'] is False
    # without a mix the same records are reshuffled (seeded, so this is deterministic) and steps drift from the shares
    job2 = train(TrainConfig(model=str(tiny_model_path()), max_steps=4, global_batch_size=8, output_dir=str(tmp_path / 'run2'),
                             track=False, seed=3), m.records, echo=False)
    rows2 = [json.loads(l) for l in open(tmp_path / 'run2' / 'metrics.jsonl')]
    assert any(r['samples'].get('customer', 0) != 4 for r in rows2)
