"""Which run classifies a photo by default: the newest finished run trained on real photos, else the newest run."""

import json

import pytest

from gapdemo.commands.classify import _run_to_use
from gapdemo.runs import choose_classifier_run, describe_training_data


def _fake_run(runs_dir, run_id, dataset, state="finished", models=True, train_images=100):
    run_dir = runs_dir / run_id
    (run_dir / "models").mkdir(parents=True)
    config = {"data": {"dataset": dataset, "data_dir": "/photos/PetImages" if dataset == "folder" else None,
                       "image_size": 32}, "model": {"backends": ["fc", "gap"]}, "train": {"epochs": 1},
              "dataset_info": {"splits": {"train": train_images}}}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "status.json").write_text(json.dumps({"state": state, "epochs_completed": 1}))
    if models:
        (run_dir / "models" / "fc.keras").write_bytes(b"a model")
    return run_dir


def test_the_newest_finished_real_photo_run_wins_over_newer_synthetic_and_unfinished_ones(runs_dir):
    _fake_run(runs_dir, "20260101-000000-aaaa", "cats_vs_dogs")
    folder_run = _fake_run(runs_dir, "20260102-000000-bbbb", "folder", train_images=18_610)
    _fake_run(runs_dir, "20260103-000000-cccc", "cats_vs_dogs", state="stopped")
    _fake_run(runs_dir, "20260104-000000-dddd", "folder", models=False)
    _fake_run(runs_dir, "20260105-000000-eeee", "synthetic")
    summary, sentence = choose_classifier_run(runs_dir)
    assert summary.run_dir == folder_run
    assert sentence == ("Using run 20260102-000000-bbbb, the newest finished run trained on real photos "
                        "(the folder /photos/PetImages, 18,610 training images).")
    assert _run_to_use(None, runs_dir) == (folder_run, sentence)


def test_without_a_real_photo_run_the_newest_run_with_models_is_used_and_the_sentence_says_so(runs_dir):
    _fake_run(runs_dir, "20260101-000000-aaaa", "synthetic")
    newest = _fake_run(runs_dir, "20260102-000000-bbbb", "cats_vs_dogs", state="interrupted", train_images=64)
    summary, sentence = choose_classifier_run(runs_dir)
    assert summary.run_dir == newest
    assert sentence.startswith("Using run 20260102-000000-bbbb, the newest run with models, trained on Cats vs Dogs, "
                               "64 training images: no finished run was trained on real photos")


def test_no_models_no_choice_and_a_named_run_is_taken_as_given(runs_dir):
    _fake_run(runs_dir, "20260101-000000-aaaa", "folder", models=False)
    assert choose_classifier_run(runs_dir) is None
    with pytest.raises(FileNotFoundError, match="no run with saved models"):
        _run_to_use(None, runs_dir)
    named = _fake_run(runs_dir, "20260102-000000-bbbb", "synthetic")
    assert _run_to_use("20260102-000000-bbbb", runs_dir) == (named, None)


def test_describe_training_data_without_dataset_info():
    assert describe_training_data({"data": {"dataset": "synthetic"}}) == "synthetic cartoon pets"
    assert describe_training_data({}) == "?"


def _classify_page(runs_dir):
    from dashboard.classify_panel import classify_panel

    classify_panel(runs_dir)


def test_the_classify_tab_preselects_the_real_photo_run_and_says_why(runs_dir):
    from streamlit.testing.v1 import AppTest

    _fake_run(runs_dir, "20260102-000000-bbbb", "cats_vs_dogs", train_images=500)
    _fake_run(runs_dir, "20260105-000000-eeee", "synthetic")
    page = AppTest.from_function(_classify_page, args=(str(runs_dir),), default_timeout=60).run()
    assert not page.exception
    assert page.selectbox(key="classify_run").value.run_id == "20260102-000000-bbbb"
    captions = [caption.value for caption in page.caption]
    assert ("Using run 20260102-000000-bbbb, the newest finished run trained on real photos "
            "(Cats vs Dogs, 500 training images).") in captions
    page.selectbox(key="classify_run").select_index(0).run()  # the user picks the newer synthetic run
    assert "Using run 20260105-000000-eeee, trained on synthetic cartoon pets, 100 training images." in [
        caption.value for caption in page.caption]
    assert any("synthetic cartoon pets" in info.value for info in page.info)
