"""The example plugin honours the harness's contracts (run after `pip install -e .`)."""

from regen_bench.testing import check_model_plugin


def test_itemknn_honours_the_contracts() -> None:
    report = check_model_plugin("example-itemknn", config={"neighbours": 20})
    assert report.tasks == ["sequential", "critique"]
