"""The realism scores of a study: one domain classifier and one set of reference features for every run.

A study trains a source-vs-target domain classifier on its real training images once
(`semst.evaluation.domain_classifier`), extracts the features of the real target training images once (the
reference), and then scores every set of images (the untranslated source, each run's translations, the
held-out real target) against that reference (`semst.evaluation.realism.realism_scores`):

- ``target_share``: the share of the images' crops the classifier calls "target" (higher is more
  realistic; the untranslated source is the floor, held-out real target images are the ceiling);
- ``kid``: KID between the classifier's features of the images and of the reference (lower is more
  realistic; on the classifier's own feature scale: compare only scores of one study);
- ``class_kid``: the same, class-matched (crops compared class by class, so that the domains' different
  class statistics do not count as a lack of realism), when label maps of both sides are known.

docs/realism.md says how they were validated.
"""

from __future__ import annotations

from pathlib import Path

from semst.study.summary import Metric

__all__ = ["RealismScorer"]


class RealismScorer:
    """Train once (`prepare`), then `score` any number of image sets against the same reference.

    Args:
        directory: where the classifier and the reference features are kept (``STUDY/realism``).
        source_images, target_images: the real training images of both domains.
        steps: classifier training steps (`semst.study.Scale.classifier_steps`).
    """

    METRICS: tuple[Metric, ...] = (
        Metric("realism.target_share", "target share (%)", True, True),
        Metric("realism.kid", "KID", False, False),
    )
    CLASS_METRIC = Metric("realism.class_kid", "class-matched KID", False, False)

    def __init__(
        self,
        directory: str | Path,
        *,
        source_images: list[Path],
        target_images: list[Path],
        target_labels: list[Path] | None = None,
        steps: int = 300,
    ) -> None:
        self.directory = Path(directory)
        self.source_images = source_images
        self.target_images = target_images
        self.target_labels = target_labels
        self.steps = steps
        self._classifier = None
        self._reference = None

    @property
    def classifier_path(self) -> Path:
        return self.directory / "classifier.safetensors"

    @property
    def reference_path(self) -> Path:
        return self.directory / "reference.safetensors"

    @classmethod
    def stored_metrics(cls, scores: list[dict]) -> tuple[Metric, ...]:
        """The realism metrics that runs scored (``scores``: their stored scores), read without the data:
        class-matched KID where any of them (a run, the floor or the ceiling) has it."""
        if any(s.get("realism", {}).get("class_kid") is not None for s in scores):
            return (*cls.METRICS, cls.CLASS_METRIC)
        return cls.METRICS

    def prepare(self, *, progress: bool = True) -> None:
        """Train the classifier and extract the reference features, unless done already."""
        from semst.evaluation.domain_classifier import train_domain_classifier
        from semst.evaluation.realism import extract_features

        if not self.classifier_path.is_file():
            train_domain_classifier(
                self.source_images,
                self.target_images,
                out=self.classifier_path,
                steps=self.steps,
                progress=progress,
            )
        if not self.reference_path.is_file():
            reference = extract_features(
                self.target_images,
                [self.classifier],
                labels=self.target_labels,
                progress=progress,
                desc="reference features",
            )
            reference.save(self.reference_path)

    @property
    def classifier(self):
        if self._classifier is None:
            from semst.evaluation.domain_classifier import load_domain_classifier

            self._classifier = load_domain_classifier(self.classifier_path)
        return self._classifier

    @property
    def reference(self):
        if self._reference is None:
            from semst.evaluation.realism import FeatureSet

            self._reference = FeatureSet.load(self.reference_path)
        return self._reference

    def score(self, images: list[Path], *, labels: list[Path] | None = None, progress: bool = True) -> dict:
        """Realism of ``images`` (with their label maps, for the class-matched KID) against the reference:
        ``target_share``, ``kid`` and ``kid_std``, ``class_kid`` (None where too few crops of a class are on
        both sides), and the full scores under ``details``."""
        from semst.evaluation.realism import realism_scores

        labels = labels if self.target_labels is not None else None
        scores = realism_scores(
            images, self.reference, classifier=self.classifier, labels=labels, progress=progress
        )
        own = scores[self.classifier.name]
        matched = (own.get("class_matched_kid") or {}).get("kid")
        return {
            "target_share": own["target_share"],
            "kid": own["kid"]["mean"],
            "kid_std": own["kid"]["std"],
            "class_kid": matched,
            "details": scores,
        }
