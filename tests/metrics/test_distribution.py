"""metrics.distribution: FID and KID with a random feature extractor standing in for Inception v3, the missing
weights message, and the real network when this machine has it."""

from __future__ import annotations

import pytest

from tests.metrics.metric_images import photo_batch


def test_fid_and_kid_with_a_random_feature_extractor(random_features):
    from dmfn_lightning.metrics import DistributionMetrics

    real = photo_batch(24)
    other = photo_batch(24, seed=100).flip(-1).mul(0.6)  # other crops, mirrored and darker

    same = DistributionMetrics(feature=random_features(), kid_subset_size=1000)
    for chunk in range(0, 24, 10):  # batches: the features accumulate over the whole set
        same.update(real[chunk : chunk + 10], real[chunk : chunk + 10])
    identical = same.compute()
    different_metric = DistributionMetrics(feature=random_features(), kid_subsets=20, kid_subset_size=16)
    different_metric.update(other, real)
    different = different_metric.compute()

    # measured: FID ~3e-8 vs 4.0; KID -0.078 vs 1.54 (KID is the unbiased MMD estimate: for one set against itself
    # it is ~0 up to the O(1/n) difference of the diagonal kernel terms, of either sign)
    assert identical["fid"] == pytest.approx(0.0, abs=1e-4)
    assert different["fid"] > 1.0 and different["kid"] > 0.5
    assert abs(identical["kid"]) < 0.1 * different["kid"]
    # KID's random subsets come from a seeded generator: computing again gives the same numbers
    assert different_metric.compute() == different
    info = different_metric.settings()
    assert info["feature_extractor"] == "custom: RandomFeatures" and info["num_features"] == 32
    assert info["kid_subset_size"] == 16 and same.settings()["kid_subset_size"] == 24  # clamped to the images


def test_fid_kid_need_two_images(random_features):
    from dmfn_lightning.metrics import DistributionMetrics

    metric = DistributionMetrics(feature=random_features())
    metric.update(photo_batch(1), photo_batch(1))
    assert metric.compute() == {"fid": None, "kid": None, "kid_std": None}


def test_missing_inception_weights_say_where_to_put_the_file(empty_torch_home):
    from dmfn_lightning.metrics import (
        INCEPTION_WEIGHTS_FILE,
        DistributionMetrics,
        FeatureExtractorUnavailableError,
        inception_weights_path,
    )

    assert inception_weights_path() == empty_torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    with pytest.raises(FeatureExtractorUnavailableError) as info:
        DistributionMetrics(fid=True, kid=True)
    message = str(info.value)
    assert "\n" not in message
    assert f"put {INCEPTION_WEIGHTS_FILE}" in message and f"{empty_torch_home / 'hub' / 'checkpoints'}/" in message
    assert "metrics.inception_weights=" in message
    with pytest.raises(FeatureExtractorUnavailableError, match="no such file"):
        DistributionMetrics(weights=str(empty_torch_home / "nowhere.pth"))


def test_inception_v3_features_when_available():
    """The real network, when this machine has torch-fidelity and the cached weights (skipped otherwise)."""
    from dmfn_lightning.metrics import DistributionMetrics, inception_weights_path
    from dmfn_lightning.metrics.distribution import _torch_fidelity_available

    if not (_torch_fidelity_available() and inception_weights_path().is_file()):
        pytest.skip(f"needs torch-fidelity and {inception_weights_path()}")
    metric = DistributionMetrics(kid_subset_size=4)
    real = photo_batch(4, size=64)
    metric.update(real, real)
    values = metric.compute()
    assert metric.num_features == 2048 and values["fid"] == pytest.approx(0.0, abs=1e-3)
