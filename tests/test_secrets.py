"""Secrets stay secret. With canary values in the credential variables, nothing the project writes or prints holds them:
run folders, MLflow params/tags/metrics/artifacts (the sqlite store and artifact files), logs, manifests, job requests
(planned, dumped and as the cloud API received them) and notebook outputs. Remote code stays off and pickled weights are
refused unless asked for by name."""
import json, os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parents[1]
CANARIES = {'AWS_SECRET_ACCESS_KEY': 'cnryAwsSecret0d9f8e7c6b5a', 'AWS_SESSION_TOKEN': 'cnryAwsSession5c4b3a2f1e0d',
            'HF_TOKEN': 'hf_cnryHfToken1a2b3c4d5e6f7a8b', 'OPENAI_API_KEY': 'sk-cnryOpenAi9z8y7x6w5v4u'}

def leaks(*roots, texts=()) -> list[str]:
    "Every (file or text, canary) where a canary value occurs, in plain bytes or JSON-escaped."
    found = []
    files = [f for r in roots for f in ([Path(r)] if Path(r).is_file() else Path(r).rglob('*')) if f.is_file()]
    blobs = [(str(f), f.read_bytes()) for f in files] + [(f'text #{i}', t.encode()) for i, t in enumerate(texts)]
    for name, b in blobs:
        for k, v in CANARIES.items():
            if v.encode() in b or v.encode('utf-16-le') in b: found.append(f'{name}: {k}')
    return found

def test_leak_finder_finds_a_planted_canary(tmp_path):
    "The checker below can fail: a canary written anywhere (nested folder, sqlite page, utf-16) is found."
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'a' / 'b' / 'x.db').write_bytes(b'\0\1' + CANARIES['HF_TOKEN'].encode() + b'\0')
    (tmp_path / 'y.txt').write_text(CANARIES['OPENAI_API_KEY'], encoding='utf-16-le')
    assert sorted(leaks(tmp_path)) == sorted([f"{tmp_path / 'a' / 'b' / 'x.db'}: HF_TOKEN", f"{tmp_path / 'y.txt'}: OPENAI_API_KEY"])
    assert leaks(texts=['ok', 'key=' + CANARIES['AWS_SESSION_TOKEN']]) == ['text #1: AWS_SESSION_TOKEN']

@pytest.fixture
def canary_env(monkeypatch):
    for k, v in CANARIES.items(): monkeypatch.setenv(k, v)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIACNRYTESTKEY00001'); monkeypatch.setenv('AWS_DEFAULT_REGION', 'us-east-1')
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False); monkeypatch.delenv('FORGE_NB_STUDIO_METADATA', raising=False)
    return dict(os.environ)

@pytest.mark.slow
def test_demo_run_writes_no_secret(tmp_path, canary_env):
    "The whole workflow (prepare, mix, train in a subprocess with MLflow, evaluate): every file it leaves and all it prints."
    out = tmp_path / 'demo'
    p = subprocess.run([sys.executable, '-m', 'forge_nb.cli', 'demo', '--out', str(out), '--steps', '4'], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900, env=dict(canary_env, HF_HUB_OFFLINE='1', MLFLOW_DISABLE_TELEMETRY='true'))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    files = [f for f in out.rglob('*') if f.is_file()]
    assert len(files) > 20 and (out / 'mlflow.db').exists() and any(f.name == 'adapter_model.safetensors' for f in files)
    assert any('train' in f.parts and f.name.endswith('.log') for f in files) or any(f.suffix == '.log' for f in files)
    assert leaks(tmp_path, texts=[p.stdout, p.stderr]) == []

def test_cloud_plans_requests_and_reports_hold_no_secret(tmp_path, canary_env, capsys):
    "Set-up plan and apply, SageMaker request (planned, dumped, as moto received it), HyperPod manifests, cost plan, clean-up, env report."
    from moto import mock_aws
    import boto3
    from forge_nb.core.env import env_report, aws_status
    from forge_nb.core.records import write_records
    from forge_nb.cloud.aws import setup_plan, apply
    from forge_nb.cloud.sagemaker import SageMakerRuntime
    from forge_nb.cloud.hyperpod import HyperPodRuntime
    from forge_nb.cloud.cleanup import cleanup
    from forge_nb.training import TrainConfig, demo_records, train
    from forge_nb.evaluation.judge import OpenAIJudge
    role = 'arn:aws:iam::123456789012:role/forge-exec'
    texts = []
    from unittest.mock import patch
    from moto.s3.models import FakeBucket
    from moto.iam.access_control import IAMPolicy, PermissionResult
    def over_tls(self, action, resource):   # moto cannot tell HTTPS from HTTP: drop the deny-non-TLS statement (as in test_aws)
        if self.policy is None: return PermissionResult.NEUTRAL
        pol = json.loads(self.policy); pol['Statement'] = [s for s in pol['Statement'] if s.get('Condition', {}).get('Bool') != {'aws:SecureTransport': 'false'}]
        return IAMPolicy(json.dumps(pol)).is_action_permitted(action, resource)
    with mock_aws(), patch.object(FakeBucket, 'get_permission', over_tls):
        iam = boto3.client('iam')
        iam.create_role(RoleName='forge-exec', AssumeRolePolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [
            {'Effect': 'Allow', 'Principal': {'Service': 'sagemaker.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}))
        rep = env_report(); texts += [repr(rep), rep._repr_markdown_(), json.dumps(aws_status(check=True), default=str)]
        plan = setup_plan('forge-canary', role, 'us-east-1', 'proj', 'run-1')
        texts += [repr(plan), json.dumps(plan.steps, default=str)]
        apply(plan)
        data = write_records(demo_records(8), tmp_path / 'mixed.jsonl')
        cfg = TrainConfig(max_steps=2, output_dir=str(tmp_path / 'r'))
        rt = SageMakerRuntime(role_arn=role, image_uri='123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:1',
                              s3_prefix='s3://forge-canary/proj/run-1', job_name='forge-canary-1')
        dr = train(cfg, data, runtime=rt, dry_run=True); texts += [repr(dr), json.dumps(dr.plan, default=str)]
        job = train(cfg, data, runtime=rt)
        job.dump(tmp_path / 'job.json')
        s3 = boto3.client('s3')    # what the project staged is encrypted at rest (the bucket default the set-up plan put)
        staged = s3.list_objects_v2(Bucket='forge-canary', Prefix='proj/run-1/')['Contents']
        assert staged and all(s3.head_object(Bucket='forge-canary', Key=o['Key']).get('ServerSideEncryption') for o in staged)
        texts.append(json.dumps(boto3.client('sagemaker').describe_training_job(TrainingJobName='forge-canary-1'), default=str))
        hp = HyperPodRuntime(image_uri='123456789012.dkr.ecr.us-east-1.amazonaws.com/forge-nb:1', instance_type='ml.p5.48xlarge', nodes=4)
        spec = {'config': cfg.to_dict(), 'train_data': '/fsx/data/train.jsonl', 'eval_data': None, 'output_dir': '/fsx/runs/x',
                'defaults': TrainConfig().to_dict()}
        texts.append(hp.plan(spec)['yaml'])
        texts += [repr(cleanup('proj/run-1', dry_run=True))]
        try: OpenAIJudge('http://127.0.0.1:9/v1', 'judge', retries=0, timeout=2).complete([('', 'hi')])
        except Exception as e: texts.append(repr(e)); texts.append(str(e))
        texts.append(repr(OpenAIJudge('http://127.0.0.1:9/v1', 'judge')))
    cap = capsys.readouterr(); texts += [cap.out, cap.err]
    assert sum(map(len, texts)) > 3000 and (tmp_path / 'job.json').exists()
    assert leaks(tmp_path, texts=texts) == []

@pytest.mark.slow
@pytest.mark.parametrize('nb', ['00_setup.ipynb', '08_aws.ipynb', '08a_sagemaker.ipynb'])
def test_notebook_outputs_hold_no_secret(tmp_path, canary_env, nb):
    "A lesson run with canaries in its environment: none reaches a cell's output."
    from nbdev.config import get_config
    from nbdev.test import test_nb as run_nb
    cfg = get_config(ROOT)
    copy = ROOT / 'nbs' / f'.canary_{nb}'           # next to the lesson (its relative paths hold), hidden from the docs and test_nbs
    src = json.loads((ROOT / 'nbs' / nb).read_text())
    for c in src['cells']: c['outputs'] = [] if c['cell_type'] == 'code' else c.get('outputs')
    copy.write_text(json.dumps({**src, 'cells': [{k: v for k, v in c.items() if v is not None} for c in src['cells']]}))   # outputs cleared: all shown below is new
    try:
        ok, _ = run_nb(copy, skip_flags=[f for f in cfg.tst_flags.split() if f != 'slow'], basepath=cfg.config_path, save=True)
        assert ok, f'{nb} failed'
        nbk = json.loads(copy.read_text())
    finally: copy.unlink(missing_ok=True)
    out = json.dumps([c.get('outputs', []) for c in nbk['cells']], default=str)
    assert len(out) > 500
    assert leaks(texts=[out]) == []

def test_committed_notebooks_hold_no_credentials():
    "No committed lesson output or fixture looks like a real credential (AWS key ids, OpenAI/HF tokens, private keys)."
    pat = re.compile(rb'(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])|sk-[A-Za-z0-9]{32,}|hf_[A-Za-z0-9]{34,}|-----BEGIN [A-Z ]*PRIVATE KEY-----')
    files = [*(ROOT / 'nbs').rglob('*.ipynb'), *(ROOT / 'fixtures').rglob('*'), ROOT / 'README.md']
    hits = [(str(f.relative_to(ROOT)), m.group(0)[:8]) for f in files if f.is_file() for m in pat.finditer(f.read_bytes())]
    assert len(files) > 50 and hits == []

def _tiny_folder(tmp_path, safe: bool) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM
    from forge_nb.core.models import load_tokenizer
    d = tmp_path / ('safe' if safe else 'pickled')
    m = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     num_key_value_heads=2, max_position_embeddings=64))
    m.save_pretrained(d); load_tokenizer().save_pretrained(d)
    if not safe:   # recent transformers write safetensors only: make the pickled checkpoint of an older or foreign tool
        import torch
        for f in d.glob('*.safetensors'): f.unlink()
        torch.save(m.state_dict(), d / 'pytorch_model.bin')
    return d

def test_pickled_weights_refused_unless_opted_in(tmp_path):
    from forge_nb.core.models import load_model
    d = _tiny_folder(tmp_path, safe=False)
    assert (d / 'pytorch_model.bin').exists() and not list(d.glob('*.safetensors'))
    with pytest.raises(ValueError, match=r'pickled.*pytorch_model\.bin.*allow_pickle_weights=True'): load_model(d)
    import torch
    m, _ = load_model(d, allow_pickle_weights=True)
    assert torch.equal(m.model.embed_tokens.weight, torch.load(d / 'pytorch_model.bin')['model.embed_tokens.weight'])
    m2, _ = load_model(_tiny_folder(tmp_path, safe=True))
    assert m2.config.hidden_size == 16

def test_remote_code_never_runs_unless_asked(tmp_path):
    "A model folder whose config maps to its own Python files: refused by default, and that code is never imported."
    from forge_nb.core.models import load_model
    from forge_nb.training import TrainConfig
    d = tmp_path / 'custom'; d.mkdir(); sentinel = tmp_path / 'code-ran'
    (d / 'config.json').write_text(json.dumps({'model_type': 'evil', 'architectures': ['EvilModel'],
        'auto_map': {'AutoConfig': 'configuration_evil.EvilConfig', 'AutoModelForCausalLM': 'modeling_evil.EvilModel'}}))
    for f in ('configuration_evil.py', 'modeling_evil.py'): (d / f).write_text(f'open({str(sentinel)!r}, "w").write("ran")\n')
    with pytest.raises(ValueError, match='trust_remote_code'): load_model(d)
    assert not sentinel.exists()
    assert TrainConfig().trust_remote_code is False
