"""Transient faults are survived: a judge endpoint answering 429/500 (bounded concurrency, backoff, clear errors) and S3
throttling / 5xx (a fault-injecting proxy in front of a real moto server). Every server here is real, on loopback."""
import http.client, json, random, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
from conftest import free_port


def serve(handler_cls, **attrs):
    "A `ThreadingHTTPServer` on 127.0.0.1 (port 0) in a daemon thread; `attrs` become attributes of the server."
    srv = ThreadingHTTPServer(('127.0.0.1', 0), handler_cls)
    srv.daemon_threads = True
    for k, v in attrs.items(): setattr(srv, k, v)
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---------------------------------------------------------------- judge endpoint: 429 / 500, concurrency, limits
class JudgeHandler(BaseHTTPRequestHandler):
    "OpenAI-style `/chat/completions`: a seeded share of requests get 429 (Retry-After: 0) or 500; the rest an echo."
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def _send(self, code, body: bytes, **hdr):
        self.send_response(code)
        for k, v in {'Content-Type': 'application/json', 'Content-Length': str(len(body)), **hdr}.items(): self.send_header(k, v)
        self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        s = self.server
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        with s.lock:
            s.requests += 1; s.inflight += 1; s.max_inflight = max(s.max_inflight, s.inflight)
            s.auth.add(self.headers.get('Authorization'))
            r = s.rng.random(); mode = s.mode
        time.sleep(s.delay)
        if mode == 'always429' or (mode == 'flaky' and r < s.p / 2):
            with s.lock: s.faults[429] += 1
            reply = 429, b'{"error": {"message": "Rate limit reached for requests", "type": "requests"}}', {'Retry-After': '0'}
        elif mode == 'flaky' and r < s.p:
            with s.lock: s.faults[500] += 1
            reply = 500, b'{"error": {"message": "The server had an error while processing your request."}}', {}
        elif mode == 'unauthorized':
            reply = 401, b'{"error": {"message": "Incorrect API key provided: sk-te****cret.", "code": "invalid_api_key"}}', {}
        else:
            user = body['messages'][-1]['content']
            reply = 200, json.dumps({'id': 'x', 'object': 'chat.completion', 'model': body['model'], 'choices': [
                {'index': 0, 'finish_reason': 'stop', 'message': {'role': 'assistant', 'content': f'echo:{user[::-1]}'}}]}).encode(), {}
        # out of flight before the reply leaves: once the client has its answer it may send the next request, and this
        # thread must not still count the old one (that race once measured 5 in flight for a bound of 4)
        with s.lock: s.inflight -= 1
        self._send(reply[0], reply[1], **reply[2])

@pytest.fixture
def judge_server():
    srv = serve(JudgeHandler, requests=0, inflight=0, max_inflight=0, faults={429: 0, 500: 0}, auth=set(),
                rng=random.Random(1234), mode='flaky', p=0.4, delay=0.03)
    yield srv
    srv.shutdown(); srv.server_close()

def _url(srv): return f'http://127.0.0.1:{srv.server_address[1]}/v1'
FAST = dict(backoff=0.001, max_backoff=0.01)   # tiny backoff: the test is about counts, not waiting

def test_judge_survives_429_and_500_with_bounded_concurrency(judge_server):
    from forge_nb.evaluation.judge import OpenAIJudge
    j = OpenAIJudge(_url(judge_server), 'judge', api_key='sk-test-secret', max_concurrency=4, max_attempts=12, **FAST)
    prompts = [(f'sys {i}', f'question number {i}') for i in range(60)]
    t0 = time.time()
    out = j.complete(prompts, max_tokens=8)
    dt = time.time() - t0
    assert out == [f'echo:{u[::-1]}' for _, u in prompts]                          # every answer right, in input order
    s = judge_server; faults = s.faults[429] + s.faults[500]
    assert s.faults[429] > 0 and s.faults[500] > 0, s.faults                          # both kinds were injected
    assert s.requests == len(prompts) + faults                                         # one retry per fault, no more
    assert j.stats['retries'] == faults and j.stats['requests'] == s.requests, (j.stats, s.faults)
    assert j.stats['by_status'] == {429: s.faults[429], 500: s.faults[500]}
    assert 1 < s.max_inflight <= 4, s.max_inflight                                    # concurrent, but bounded
    assert dt < 0.8 * s.requests * s.delay, dt                                         # faster than one at a time
    assert s.auth == {'Bearer sk-test-secret'}
    print(f'judge: {len(prompts)} prompts, {s.requests} requests, faults injected {dict(s.faults)} = {faults}, '
          f'retries {j.stats["retries"]}, max in flight {s.max_inflight}, {dt:.2f} s')

def test_judge_gives_up_after_the_attempt_limit_with_a_clear_error(judge_server):
    from forge_nb.evaluation.judge import OpenAIJudge
    judge_server.mode = 'always429'
    j = OpenAIJudge(_url(judge_server), 'judge', api_key='sk-test-secret', max_attempts=5, max_concurrency=1, **FAST)
    with pytest.raises(RuntimeError) as ei: j.complete([('', 'hi')])
    msg = str(ei.value)
    assert judge_server.requests == 5 and j.stats['requests'] == 5 and j.stats['retries'] == 4
    assert _url(judge_server) in msg and '429' in msg and '5 attempts' in msg and 'Rate limit reached' in msg, msg
    assert 'sk-test-secret' not in msg

def test_judge_unauthorized_fails_at_once(judge_server):
    from forge_nb.evaluation.judge import OpenAIJudge
    judge_server.mode = 'unauthorized'
    j = OpenAIJudge(_url(judge_server), 'judge', api_key='sk-test-secret', max_attempts=6, **FAST)
    t0 = time.time()
    with pytest.raises(RuntimeError) as ei: j.complete([('', 'a'), ('', 'b'), ('', 'c')])
    msg = str(ei.value)
    assert '401' in msg and 'Incorrect API key' in msg and 'sk-test-secret' not in msg, msg
    assert j.stats['retries'] == 0 and judge_server.requests <= 3 and time.time() - t0 < 5

def test_judge_retry_after_is_honoured_and_capped():
    from forge_nb.evaluation.judge import OpenAIJudge
    j = OpenAIJudge('http://127.0.0.1:9/v1', 'm', api_key='', backoff=0.5, max_backoff=4, max_retry_after=10)
    assert j.retry_delay(1, '3') == 3 and j.retry_delay(1, '3600') == 10 and j.retry_delay(1, '0') == 0
    assert all(0.25 <= j.retry_delay(1, None) <= 0.5 for _ in range(50))             # jittered exponential backoff
    assert all(2 <= j.retry_delay(9, None) <= 4 for _ in range(50))                   # capped


# ---------------------------------------------------------------- S3: SlowDown / InternalError through a proxy
SLOWDOWN = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>'
INTERNAL = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>FAULT</RequestId></Error>'
HOP = {'connection', 'keep-alive', 'transfer-encoding', 'expect', 'proxy-connection', 'te', 'upgrade'}

class FaultProxy(BaseHTTPRequestHandler):
    "Forwards every request to the moto server, except a seeded share answered with S3's own 503 SlowDown / 500 InternalError."
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def _body(self):
        if 'chunked' in (self.headers.get('Transfer-Encoding') or '').lower():
            out = b''
            while True:
                n = int(self.rfile.readline().split(b';')[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''): pass
                    return out
                out += self.rfile.read(n); self.rfile.readline()
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))
    def _reply(self, code, hdrs, body):
        self.send_response(code)
        for k, v in hdrs: self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD': self.wfile.write(body)
    def _handle(self):
        s, body = self.server, self._body()
        with s.lock:
            s.requests += 1; r = s.rng.random()
            fault = 'slowdown' if r < s.p * s.slowdown_share else 'internal' if r < s.p else None
            if fault: s.faults[fault] += 1
        if fault:
            code, xml = (503, SLOWDOWN) if fault == 'slowdown' else (500, INTERNAL)
            return self._reply(code, [('Content-Type', 'application/xml'), ('Content-Length', str(len(xml))), ('x-amz-request-id', 'FAULT')], xml)
        c = http.client.HTTPConnection('127.0.0.1', s.upstream, timeout=30)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != 'content-length'}
        hdrs['Content-Length'] = str(len(body))
        c.request(self.command, self.path, body=body, headers=hdrs)
        resp = c.getresponse(); data = resp.read(); c.close()
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP and k.lower() != 'content-length']
        out.append(('Content-Length', resp.getheader('Content-Length') if self.command == 'HEAD' else str(len(data))))
        self._reply(resp.status, [(k, v) for k, v in out if v is not None], data)
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

@pytest.fixture
def s3(monkeypatch):
    "A moto S3 server, and a fault-injecting proxy in front of it; yields `(proxy, url_of(endpoint))`."
    from moto.server import ThreadedMotoServer
    port = free_port()
    moto = ThreadedMotoServer(ip_address='127.0.0.1', port=port); moto.start()
    proxy = serve(FaultProxy, upstream=port, requests=0, faults={'slowdown': 0, 'internal': 0}, rng=random.Random(7),
                  p=0.3, slowdown_share=1/3)
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_DEFAULT_REGION='us-east-1').items():
        monkeypatch.setenv(k, v)
    for k in ('AWS_ENDPOINT_URL_S3', 'AWS_MAX_ATTEMPTS', 'AWS_RETRY_MODE', 'AWS_PROFILE'): monkeypatch.delenv(k, raising=False)
    proxy.direct, proxy.via = f'http://127.0.0.1:{port}', f'http://127.0.0.1:{proxy.server_address[1]}'
    monkeypatch.setenv('AWS_ENDPOINT_URL', proxy.direct)
    yield proxy, monkeypatch
    proxy.shutdown(); proxy.server_close(); moto.stop()

def _objects(c, bucket, prefix):
    keys = sorted(o['Key'] for p in c.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix) for o in p.get('Contents', []))
    return {k[len(prefix):]: c.get_object(Bucket=bucket, Key=k)['Body'].read() for k in keys}

def test_s3_throttling_and_5xx_are_survived(s3, tmp_path):
    from forge_nb.core.embedded import domain_rows
    from forge_nb.core.storage import s3_client, upload_path, download_uri
    from forge_nb.data.preparation import prepare
    proxy, mp = s3
    rows = domain_rows(120, seed=3); rows.append(dict(rows[0]))
    data = ''.join(json.dumps(r) + '\n' for r in rows).encode()
    src = tmp_path / 'folder'; (src / 'sub').mkdir(parents=True)
    for i in range(8): (src / f'f{i}.bin').write_bytes(bytes([i]) * (1000 + 777 * i))
    (src / 'sub' / 'x.jsonl').write_bytes(data)

    def run(prefix):
        c = s3_client()
        c.put_object(Bucket='data', Key=f'{prefix}/in/med.jsonl', Body=data)
        assert c.get_object(Bucket='data', Key=f'{prefix}/in/med.jsonl')['Body'].read() == data
        upload_path(src, f's3://data/{prefix}/folder')
        back = download_uri(f's3://data/{prefix}/folder', tmp_path / prefix)
        assert sorted(p.relative_to(back).as_posix() for p in back.rglob('*') if p.is_file()) == \
               sorted(p.relative_to(src).as_posix() for p in src.rglob('*') if p.is_file())
        assert all((back / p.relative_to(src)).read_bytes() == p.read_bytes() for p in src.rglob('*') if p.is_file())
        res = prepare(f's3://data/{prefix}/in/med.jsonl', f's3://data/{prefix}/prepared', on_error='reject')
        assert res.summary['read'] == 121 and res.summary['rejected'] == {'duplicate': 1}
        return _objects(c, 'data', f'{prefix}/prepared/')

    s3_client().create_bucket(Bucket='data')
    clean = run('clean')                                        # straight to moto: the reference
    assert proxy.requests == 0
    mp.setenv('AWS_ENDPOINT_URL', proxy.via)                    # the same operations through the faulty proxy
    t0 = time.time(); faulty = run('faulty'); dt = time.time() - t0
    n = sum(proxy.faults.values())
    print(f's3: {proxy.requests} requests through the proxy, faults injected {proxy.faults} = {n}, survived all, {dt:.1f} s')
    assert proxy.faults['slowdown'] > 0 and proxy.faults['internal'] > 0, proxy.faults
    assert n / proxy.requests > 0.15
    assert set(clean) >= {'train.jsonl', 'validation.jsonl', 'test.jsonl', 'rejects.jsonl', 'summary.json'}
    assert faulty.keys() == clean.keys()
    for k in clean:
        if k == 'rejects.jsonl': assert faulty[k] == clean[k].replace(b'/clean/', b'/faulty/'), k   # rejects name their source
        elif k == 'summary.json':
            a, b = json.loads(clean[k]), json.loads(faulty[k])
            a.pop('paths', None); b.pop('paths', None)          # the local temp folders the splits were written in
            assert json.loads(json.dumps(a).replace('/clean/', '/faulty/')) == b
        else: assert faulty[k] == clean[k], k                   # the splits: byte-identical

def test_s3_failing_every_time_is_a_clear_error_not_a_hang(s3, tmp_path):
    from forge_nb.core.storage import S3Error, s3_client, upload_path, download_uri
    proxy, mp = s3
    s3_client().create_bucket(Bucket='data')
    s3_client().put_object(Bucket='data', Key='in/x.jsonl', Body=b'{}\n')
    mp.setenv('AWS_ENDPOINT_URL', proxy.via); mp.setenv('AWS_MAX_ATTEMPTS', '3')
    proxy.p, proxy.slowdown_share = 1.0, 1.0                    # every request: 503 SlowDown
    f = tmp_path / 'a.jsonl'; f.write_text('{}\n')
    t0 = time.time()
    with pytest.raises(S3Error) as ei: upload_path(f, 's3://data/out/a.jsonl')
    msg = str(ei.value)
    assert 's3://data/out/a.jsonl' in msg and 'SlowDown' in msg and '3 attempts' in msg, msg
    with pytest.raises(S3Error) as ei: download_uri('s3://data/in/x.jsonl', tmp_path / 'd')
    msg = str(ei.value)
    assert 's3://data/in/x.jsonl' in msg and 'SlowDown' in msg and 'Please reduce your request rate' in msg, msg
    assert proxy.requests == 6 and time.time() - t0 < 20
    print(f's3 all-failing: {proxy.requests} requests, errors: {msg}')
