"Every entry point of the preparation stage rejects bad input clearly (issue 16): fuzzed arguments and column maps of `prepare`."
import os, traceback
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from forge_nb.core.embedded import domain_rows
from forge_nb.data.load import LoadError
from forge_nb.data.filters import FilterConfig
from forge_nb.data.transform import CANONICAL, SanitizeConfig, to_chat
from forge_nb.data.preparation import prepare

ROWS = domain_rows(30, seed=1)
ARGS = ['on_error', 'format', 'out_format', 'render', 'include_reasoning', 'exact_lengths', 'verbose', 'stream', 'chat_template',
        'system_prompt', 'stratify', 'split', 'config', 'revision', 'seed', 'max_length', 'min_rows', 'length_sample', 'splits',
        'column_map', 'sanitize', 'tokenizer', 'source', 'out_dir'] + [f for f in FilterConfig.__dataclass_fields__ if f != 'languages']
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(10**6, 10**7), st.integers(2**62, 2**70), st.floats(), st.text(max_size=6),
                 st.lists(st.integers(-1, 2), max_size=4), st.lists(st.floats(0, 1), min_size=3, max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()))

def check(call, names):
    "Either the call succeeds with balanced accounting, or it fails with our error naming the argument, raised from forge_nb's code."
    try: r = call()
    except (ValueError, TypeError, LoadError) as e:
        msg = str(e)
        assert any(n in msg for n in names), f'{type(e).__name__}: {msg!r} does not name {names}'
        where = traceback.extract_tb(e.__traceback__)[-1].filename
        assert f'{os.sep}forge_nb{os.sep}' in where and '.venv' not in where.split('forge_nb')[0][-6:], f'raised inside a library: {where}'
        return e
    assert r.balanced and r.summary['read'] == len(ROWS)
    return r

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(ARGS), junk)
def test_fuzz_prepare_arguments(tmp_path_factory, name, value):
    if name == 'out_dir' and isinstance(value, str): return   # a text out_dir is a folder name: it would be written in the cwd
    if name == 'source' and (isinstance(value, str) or value == [] or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        return    # a text source is a path or hub id (see test_bad_sources); an empty list is an empty data set
    if name == 'tokenizer' and isinstance(value, str): value = f'/nonexistent/{value}'
    out = tmp_path_factory.mktemp('a')/'out'
    kw = dict(source=ROWS, out_dir=out, on_error='reject')
    kw[name] = value
    check(lambda: prepare(kw.pop('source'), kw.pop('out_dir'), **kw), [name])

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.one_of(st.sampled_from(list(CANONICAL) + ['user', 'assistant', 'input', 'output']), st.text(max_size=5)),
                       st.one_of(st.sampled_from(list(ROWS[0])), st.text(max_size=5), st.integers(), st.none()), max_size=3),
       st.sampled_from(['raise', 'reject']))
def test_fuzz_column_map(tmp_path_factory, cmap, on_error):
    out = tmp_path_factory.mktemp('c')/'out'
    check(lambda: prepare(ROWS, out, column_map=cmap, on_error=on_error), ['column_map', 'missing column', 'missing_field', 'wrong_type', "column '", 'each item of'])

@pytest.mark.parametrize('source,needle', [('/nonexistent/file.jsonl', 'file.jsonl'), ('', 'source must be'), ('notes.txt', 'notes.txt'),
                                           (b'bytes', 'source must be'), ({'question': 'q'}, 'source must be'), (3.5, 'source must be')])
def test_bad_sources(tmp_path, source, needle):
    if source == 'notes.txt': (tmp_path/'notes.txt').write_text('x'); source = tmp_path/'notes.txt'
    e = check(lambda: prepare(source, tmp_path/'o'), ['source', needle])
    assert isinstance(e, Exception) and needle in str(e)

def test_named_errors_and_allowed_values(tmp_path):
    for kw, msg in ((dict(on_error='skip'), "on_error must be one of ('raise', 'reject'), not 'skip'"),
                    (dict(splits=(0.5, 0.5)), 'splits must be 3 non-negative ratios'), (dict(splits='abc'), 'splits must be 3'),
                    (dict(seed=-1), 'seed must be an integer >= 0'), (dict(seed=1.5), 'seed must be an integer >= 0'),
                    (dict(max_length=100), 'max_length must be None without a tokenizer'), (dict(format='chat'), 'format must be one of'),
                    (dict(tokenizer=3), 'tokenizer must be None, a path'), (dict(tokenizer='/no/such/tok'), "tokenizer '/no/such/tok' could not be loaded"),
                    (dict(near_dup='0.8'), 'near_dup must be None or a number in (0, 1)'), (dict(min_chars=-1), 'min_chars must be an integer >= 0'),
                    (dict(languages=[1]), 'languages must be None or a list'), (dict(sanitize='yes'), 'sanitize must be True, False or a SanitizeConfig'),
                    (dict(stream=True, stratify='answer_letter'), 'stratify must be None with stream=True'),
                    (dict(stream=True, out_format='parquet'), "out_format must be 'jsonl' with stream=True"),
                    (dict(stream=True, near_dup=0.8), 'near_dup must be None with stream=True'),
                    (dict(column_map={'question': 'nope'}), "column_map: missing column 'nope'")):
        with pytest.raises((ValueError, TypeError, LoadError)) as ei: prepare(ROWS, tmp_path/'o', **kw)
        assert msg in str(ei.value), (kw, str(ei.value))
    with pytest.raises(ValueError, match="SanitizeConfig.tokens must be a list of non-empty strings"): SanitizeConfig(tokens=['', 'x'])
    with pytest.raises(ValueError, match="SanitizeConfig.prefixes: prefix 'System' must end with ':'"): SanitizeConfig(prefixes=['System'])
    assert not list(Path(tmp_path).glob('o/*'))   # a bad argument fails before anything is written
