"The slider editor, headless: moving sliders keeps a valid config, the bar and table follow, apply sets the config."
import numpy as np, pytest
from hypothesis import given, settings, strategies as st
from forge_nb.mixing import MixConfig, get_config, reset_config, categories
from forge_nb.mixing.sliders import MixEditor, renormalise, batch_bar
from forge_nb.mixing.catalog import Catalog, register_source

@pytest.fixture(autouse=True)
def _clean():
    reset_config(); yield; reset_config()

@pytest.fixture(scope='module')
def editor():
    return MixEditor(batch_size=16, preview_n=64)

@settings(max_examples=40, deadline=None)
@given(moves=st.lists(st.tuples(st.sampled_from(list(categories())), st.floats(0, 100)), min_size=1, max_size=8),
       cust=st.integers(0, 99))
def test_any_slider_moves_give_a_valid_config(editor, moves, cust):
    editor.customer.value = cust
    for k, v in moves:
        editor.sliders[k].value = v
        assert abs(sum(editor.weights.values()) - 100) < 1e-6
        assert editor.sliders[k].value == pytest.approx(v)
    cfg = editor.config                      # validated by MixConfig
    assert cfg.customer_data_percent == cust
    import re
    m = re.search(r'one batch of 16: (\d+) customer', editor.bar.value)
    assert m or cust / 100 * 16 < 1, editor.bar.value   # only a share under one example per batch may leave customer out
    c = int(m.group(1)) if m else 0
    assert abs(c - cust / 100 * 16) < 1      # the bar shows the exact composition of one batch
    if editor.report is None:   # nothing can be previewed: every weighted source is empty in the offline catalog, and the table says so
        assert 'nothing to preview' in editor.table.value and cust == 0
    else: assert editor.report.epoch_rows_off == 0 and editor.report.batch_rows_off < 1

def test_renormalise_edges():
    assert renormalise({'a': 0, 'b': 0}, 'a', 30) == {'a': 30.0, 'b': 70.0}
    assert renormalise({'a': 100}, 'a', 20) == {'a': 100.0}  # a lone category is always 100
    w = renormalise({'a': 50, 'b': 50}, 'a', 150)
    assert w == {'a': 100.0, 'b': 0.0}

def test_apply_and_customer_100():
    seen = []
    ed = MixEditor(batch_size=10, on_apply=seen.append)
    ed.customer.value = 80
    ed.sliders['rai'].value = 50
    ed.apply_button.click()
    assert get_config() == ed.config == seen[0] and get_config().weights['rai'] == pytest.approx(50)
    assert 'applied: 80% customer' in ed.status.value
    ed.customer.value = 100
    assert all(s.disabled for s in ed.sliders.values()) and ed.apply() == MixConfig(100)
    assert 'one batch of 10: 10 customer' in ed.bar.value
    ed.customer.value = 50                   # weights come back when the general part does
    assert ed.config.weights['rai'] == pytest.approx(50)

def test_table_uses_customer_tokens_and_reports_empty_categories():
    cust = [{'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a b c d e f g h'}]}] * 40
    ed = MixEditor(MixConfig(50, {'agents': 50, 'math': 50}), customer=cust, batch_size=8, preview_n=80)
    rows = {r['source']: r for r in ed.report.rows}
    assert rows['agents']['rows'] == 0 and 'agents' in ed.table.value and 'redistributed' in ed.table.value
    assert rows['customer']['rows'] == 40 and rows['customer']['tokens_pct'] > 50
    assert 'tokens %' in ed.table.value

def test_show_subset_and_user_category():
    cat = Catalog()
    from forge_nb.mixing.config import _USER_CATEGORIES
    try:
        register_source('legal-qa', [{'messages': [{'role': 'user', 'content': 'x'}, {'role': 'assistant', 'content': 'y'}]}] * 5, catalog=cat)
        ed = MixEditor(MixConfig(60, {'legal-qa': 100}), catalog=cat, show=['legal-qa', 'math'], batch_size=10, preview_n=20)
        assert set(ed.sliders) == {'legal-qa', 'math'}
        ed.sliders['math'].value = 25
        assert ed.config.weights == pytest.approx({'legal-qa': 75.0, 'math': 25.0})
        assert '6 customer' in batch_bar(ed.config, 10)
    finally:
        _USER_CATEGORIES.clear()
