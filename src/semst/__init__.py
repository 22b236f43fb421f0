"""semst: semantically consistent multi-scale unpaired image-to-image translation (SemST).

Public API::

    from semst import Translator, ExperimentConfig, load_config
    translator = Translator.from_checkpoint("runs/my-run")   # a checkpoint file or a run directory
    translated = translator.translate(pil_image)              # same size as the input

Losses are importable on their own: ``from semst.losses import hdce_loss, rsmi, ts_loss``.
"""

__version__ = "0.1.0"

from semst.config import ExperimentConfig, load_config  # noqa: E402

__all__ = ["ExperimentConfig", "Translator", "__version__", "load_config"]


def __getattr__(name: str):
    # Translator pulls in torch and the networks; import it lazily so `semst --help` stays fast.
    if name == "Translator":
        from semst.translators import Translator

        return Translator
    raise AttributeError(f"module 'semst' has no attribute {name!r}")
