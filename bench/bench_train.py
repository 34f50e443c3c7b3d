"""Training throughput: padded batches with the plain HF Trainer defaults vs forge_nb's packed path, same mixed data.

    .venv/bin/python bench/bench_train.py                # CPU, the embedded tiny model (about 2-4 minutes here)
    .venv/bin/python bench/bench_train.py --gpu --model /path/to/Qwen2.5-0.5B-Instruct --steps 100 --max-length 1024

Both runs train the same LoRA adapter (r=8, alpha=16, the architecture's default targets) with the same assistant-only
labels on the same records in the same order of magnitude of steps. "padded" is what a plain `Trainer` recipe does:
every sample padded to `max_length` (default_data_collator), default TrainingArguments apart from the step count and
learning rate. "dynamic" (reported for reference) pads to the longest sample of each batch (DataCollatorForSeq2Seq).
tokens/s counts real (non-pad) tokens per second of training time, model loading excluded.
The last printed line is one JSON object.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
for k, v in dict(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_DATASETS_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true',
                 TOKENIZERS_PARALLELISM='false', TRANSFORMERS_VERBOSITY='error').items(): os.environ.setdefault(k, v)
import torch

def mixed_records(n, seed=0):
    from forge_nb.mixing import config
    from forge_nb.core.embedded import domain_rows
    cust = [{'messages': [{'role': 'user', 'content': r['question'] + (' Options: ' + '; '.join(f'{k}) {v}' for k, v in r['options'].items()) if r.get('options') else '')},
                          {'role': 'assistant', 'content': f"{r['reasoning']} Answer: {r['answer']}"}]} for r in domain_rows(n, seed=seed)]
    return mixing.mix(cust, mixing.MixConfig(customer_data_percent=50.0), n_examples=n, seed=seed).records

def hf_trainer(model_path, samples, args, dynamic=False):
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator, DataCollatorForSeq2Seq
    from peft import LoraConfig, get_peft_model
    from forge_nb.core.models import load_tokenizer, lora_targets
    import datasets
    tok = load_tokenizer(model_path)
    L = args.max_length
    rows = []
    for s in samples:
        ids, m = s['input_ids'], s['assistant_mask']
        lab = [i if k else -100 for i, k in zip(ids, m)]          # HF shifts labels inside the model
        if dynamic: rows.append(dict(input_ids=ids, attention_mask=[1] * len(ids), labels=lab))
        else:
            pad = L - len(ids)
            rows.append(dict(input_ids=ids + [tok.pad_token_id] * pad, attention_mask=[1] * len(ids) + [0] * pad, labels=lab + [-100] * pad))
    ds = datasets.Dataset.from_list(rows)
    torch.manual_seed(0)
    dev_kw = dict(dtype=torch.bfloat16 if args.gpu else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_path, **dev_kw)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=lora_targets(model), task_type='CAUSAL_LM'))
    out = tempfile.mkdtemp()
    ta = TrainingArguments(output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=args.lr,
                           report_to='none', save_strategy='no', logging_steps=max(args.steps // 5, 1), disable_tqdm=True,
                           bf16=args.gpu, use_cpu=not args.gpu, seed=0, dataloader_drop_last=True)
    base = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100) if dynamic else default_data_collator
    seen = {'real': 0, 'padded': 0}
    def coll(features):                      # count the real (attention_mask=1) tokens the Trainer actually trains on
        b = base(features); seen['real'] += int(b['attention_mask'].sum()); seen['padded'] += b['attention_mask'].numel()
        return b
    tr = Trainer(model=model, args=ta, train_dataset=ds, data_collator=coll)
    t = time.time(); res = tr.train(); dt = time.time() - t
    return dict(tok_s=seen['real'] / dt, loss=res.training_loss, wall_s=dt, pad_frac=1 - seen['real'] / max(seen['padded'], 1))

def forge_packed(model_path, records, args):
    from forge_nb.training import TrainConfig, train
    d = tempfile.mkdtemp()
    cfg = TrainConfig(model=str(model_path), max_steps=args.steps, global_batch_size=args.batch, micro_batch_size=args.batch,
                      lr=args.lr, max_length=args.max_length, track=False, output_dir=str(Path(d) / 'run'),
                      bf16=args.gpu, device='cuda' if args.gpu else 'cpu', lr_scheduler='linear', seed=0)
    job = train(cfg, records, echo=False)
    h = job.history()
    tok = h.tokens.sum()
    wall = job.metrics['runtime_s']
    return dict(tok_s=tok / wall, loss=job.metrics['train_loss_mean'], wall_s=wall)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='model folder (default: the embedded tiny model)')
    ap.add_argument('--steps', type=int, default=30); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--max-length', type=int, default=256); ap.add_argument('--lr', type=float, default=2e-4)
    ap.add_argument('--records', type=int, default=512); ap.add_argument('--threads', type=int, default=1,
                    help='torch CPU threads (1 is steadier on a shared 2-core machine)')
    ap.add_argument('--gpu', action='store_true', help='CUDA + bf16 variant for a real 0.5B-class model (not run in CI)')
    ap.add_argument('--no-dynamic', action='store_true', help='skip the dynamic-padding reference run')
    ap.add_argument('--repeats', type=int, default=2, help='interleaved repeats; the fastest of each kind is reported')
    args = ap.parse_args(argv)
    if args.gpu and not torch.cuda.is_available(): sys.exit('--gpu needs CUDA')
    torch.set_num_threads(args.threads)
    from forge_nb.core.models import load_tokenizer
    from forge_nb.training.packing import tokenize_chat, demo_model_path
    model = Path(args.model) if args.model else demo_model_path()
    tok = load_tokenizer(model)
    records = mixed_records(args.records)
    samples = [s for r in records if (s := tokenize_chat(r, tok, args.max_length)) is not None]
    lens = [len(s['input_ids']) for s in samples]
    print(f"model {model}; {len(samples)} samples, length mean {sum(lens) / len(lens):.1f} max {max(lens)}; "
          f"{args.steps} steps x {args.batch}; threads {args.threads}; sources {len({r['source'] for r in records})}", flush=True)
    runs = {'padded': [], 'dynamic': [], 'packed': []}
    for r in range(args.repeats):             # interleaved repeats; the best of each is reported (the machine is shared)
        pad = hf_trainer(model, samples, args); runs['padded'].append(pad)
        print(f"[{r + 1}] padded (HF Trainer, pad to {args.max_length}): {pad['tok_s']:,.0f} real tok/s ({pad['pad_frac']:.0%} padding), "
              f"loss {pad['loss']:.4f}, {pad['wall_s']:.1f}s", flush=True)
        if not args.no_dynamic:
            dyn = hf_trainer(model, samples, args, dynamic=True); runs['dynamic'].append(dyn)
            print(f"[{r + 1}] dynamic (HF Trainer, pad to longest in batch): {dyn['tok_s']:,.0f} real tok/s ({dyn['pad_frac']:.0%} padding), "
                  f"loss {dyn['loss']:.4f}, {dyn['wall_s']:.1f}s", flush=True)
        pk = forge_packed(model, records, args); runs['packed'].append(pk)
        print(f"[{r + 1}] packed (forge_nb): {pk['tok_s']:,.0f} tok/s, loss {pk['loss']:.4f}, {pk['wall_s']:.1f}s", flush=True)
    best = lambda k: max(runs[k], key=lambda d: d['tok_s']) if runs[k] else None
    pad, dyn, pk = best('padded'), best('dynamic'), best('packed')
    out = {'bench': 'train', 'padded_tok_s': round(pad['tok_s'], 1), 'packed_tok_s': round(pk['tok_s'], 1),
           'ratio': round(pk['tok_s'] / pad['tok_s'], 3), 'padded_loss': round(pad['loss'], 4), 'packed_loss': round(pk['loss'], 4)}
    if dyn: out.update(dynamic_tok_s=round(dyn['tok_s'], 1), ratio_vs_dynamic=round(pk['tok_s'] / dyn['tok_s'], 3), dynamic_loss=round(dyn['loss'], 4))
    out.update(device='cuda' if args.gpu else 'cpu', steps=args.steps, batch=args.batch, max_length=args.max_length, repeats=args.repeats)
    print(json.dumps(out))

if __name__ == '__main__': main()
