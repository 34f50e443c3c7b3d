"The mix slider editor in a real JupyterLab + chromium: sliders move, the bar and table follow, Apply reaches the kernel."
import os, shutil
import pytest
from jlab import jupyterlab, lab_page, write_notebook, open_notebook, run_cell  # noqa: F401 (fixtures)

CELL = """from forge_nb.mixing.sliders import MixEditor
ed = MixEditor(batch_size=20)
ed"""

@pytest.mark.browser
def test_mix_editor_in_jupyterlab(jupyterlab, lab_page, tmp_path):
    page = lab_page
    write_notebook(jupyterlab.root / 'mix.ipynb', [CELL])
    open_notebook(page, jupyterlab, 'mix.ipynb')
    run_cell(page, 0)
    cap = page.locator('.forge-mix-bar-caption')
    cap.wait_for(timeout=60000)
    assert cap.inner_text().startswith('one batch of 20: 10 customer')
    # customer slider (the first one): +5 with the keyboard -> 55% -> 11 of 20
    page.locator('.widget-slider .noUi-handle').first.click()
    for _ in range(5): page.keyboard.press('ArrowRight')
    page.wait_for_function("() => document.querySelector('.forge-mix-bar-caption').innerText.includes('11 customer')", timeout=20000)
    # a category slider: math 10.0 -> 11.0 (step 0.1); the others are rescaled so the general part stays at 100
    math = page.locator('.widget-slider', has=page.locator('label', has_text='math')).filter(
        has_not=page.locator('label', has_text='reasoning'))
    math.locator('.noUi-handle').click()
    for _ in range(10): page.keyboard.press('ArrowRight')
    base = page.locator('.widget-slider', has=page.locator('label', has_text='baseline')).locator('.widget-readout')
    page.wait_for_function("""() => [...document.querySelectorAll('.widget-slider')].some(
        s => s.querySelector('label')?.innerText.trim() === 'baseline' && s.querySelector('.widget-readout').innerText.trim() === '19.8')""",
        timeout=20000)
    assert base.inner_text().strip() == '19.8'
    assert 'rows off' in page.locator('.forge-mix-report').inner_text()
    page.locator('button', has_text='Apply').click()
    page.wait_for_function("() => document.querySelector('.forge-mix-status').innerText.includes('applied: 55% customer')", timeout=20000)
    page.set_viewport_size({'width': 1400, 'height': 2300})  # tall enough to show the whole editor in one image
    page.evaluate("() => document.querySelectorAll('.jp-WindowedPanel-outer, .jp-Notebook').forEach(e => e.scrollTop = 0)")
    page.wait_for_timeout(300)
    shot = tmp_path / 'mix_editor.png'
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get('FORGE_SHOT_DIR'): shutil.copy(shot, os.environ['FORGE_SHOT_DIR'])
