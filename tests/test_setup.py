"Setup stage: environment report, storage round trips through a real (moto) S3 server, tracking URI resolution."
import os, subprocess, sys, importlib.metadata as md
from pathlib import Path
import pytest
from forge_nb.core.env import env_report, run_dir, offline
from forge_nb.core.storage import download_uri, upload_path, split_s3_uri, s3_client
from forge_nb.core.tracking import tracking_uri, configure_tracking
from conftest import free_port

@pytest.fixture
def s3_server(monkeypatch):
    "A moto S3 server on loopback; boto3 reaches it through AWS_ENDPOINT_URL like any S3-compatible store."
    from moto.server import ThreadedMotoServer
    port = free_port()
    srv = ThreadedMotoServer(ip_address='127.0.0.1', port=port); srv.start()
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_DEFAULT_REGION='us-east-1',
                     AWS_ENDPOINT_URL=f'http://127.0.0.1:{port}').items(): monkeypatch.setenv(k, v)
    yield f'http://127.0.0.1:{port}'
    srv.stop()

def test_env_report_renders_and_names_device():
    r = env_report()
    md_ = r._repr_markdown_()
    assert '| torch |' in md_ and r.packages['torch'] == md.version('torch')
    assert r.device == ('cuda' if r.gpus else 'cpu')
    if not r.gpus: assert any('No GPU' in w for w in r.warnings)

def test_s3_round_trip_over_http(tmp_path, s3_server):
    s3_client().create_bucket(Bucket='bkt')
    src = tmp_path / 'out'; (src / 'deep' / 'er').mkdir(parents=True)
    (src / 'train.jsonl').write_text('{"messages": []}\n'); (src / 'deep' / 'er' / 'x.bin').write_bytes(b'\x00\xff' * 1000)
    assert upload_path(src, 's3://bkt/runs/a') == 's3://bkt/runs/a'
    keys = sorted(o['Key'] for o in s3_client().list_objects_v2(Bucket='bkt')['Contents'])
    assert keys == ['runs/a/deep/er/x.bin', 'runs/a/train.jsonl']
    back = download_uri('s3://bkt/runs/a', tmp_path / 'back')
    assert (back / 'deep' / 'er' / 'x.bin').read_bytes() == b'\x00\xff' * 1000
    one = download_uri('s3://bkt/runs/a/train.jsonl', tmp_path / 'one')
    assert one.read_text() == '{"messages": []}\n'
    with pytest.raises(FileNotFoundError, match='Nothing found at s3://bkt/missing'): download_uri('s3://bkt/missing', tmp_path)

def test_local_paths(tmp_path):
    f = tmp_path / 'a.txt'; f.write_text('x')
    assert download_uri(str(f)) == f
    with pytest.raises(FileNotFoundError, match='No such file'): download_uri(str(tmp_path / 'nope.jsonl'))
    assert Path(upload_path(f, tmp_path / 'copy' / 'b.txt')).read_text() == 'x'

def test_tracking_uri_resolution(in_tmp, monkeypatch):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    assert tracking_uri() == f'sqlite:///{in_tmp / "mlflow.db"}'
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://127.0.0.1:5999')
    assert tracking_uri() == 'http://127.0.0.1:5999'
    arn = 'arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-abc'
    try: md.version('sagemaker-mlflow'); has_plugin = True
    except md.PackageNotFoundError: has_plugin = False
    if has_plugin: assert tracking_uri(arn) == arn
    else:
        with pytest.raises(ImportError, match='pip install sagemaker-mlflow'): tracking_uri(arn)
    with pytest.raises(ValueError, match='Not a SageMaker MLflow ARN'): tracking_uri('arn:aws:sagemaker:us-east-1:1:endpoint/x')

def test_configure_tracking_local_store_logs_a_run(in_tmp):
    import mlflow
    uri = configure_tracking(str(in_tmp / 'store'), experiment='exp-setup')
    with mlflow.start_run() as r: mlflow.log_metric('m', 1.5)
    got = mlflow.MlflowClient(uri).get_run(r.info.run_id)
    assert got.data.metrics['m'] == 1.5 and (in_tmp / 'store' / 'mlflow.db').exists()

def test_run_dir_and_offline(tmp_path, monkeypatch):
    for v in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'TRANSFORMERS_OFFLINE'): monkeypatch.delenv(v, raising=False)
    assert offline() == {'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    p = run_dir('a/b c', root=tmp_path, stamp=False)
    assert p == tmp_path / 'a-b-c' and p.is_dir()

def test_cli_env_runs_as_a_command():
    out = subprocess.run([sys.executable, '-m', 'forge_nb.cli', 'env'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '| transformers |' in out.stdout
