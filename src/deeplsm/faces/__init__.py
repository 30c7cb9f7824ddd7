"""The paper's 2D part: multi-output ResNet18 (age / sex / ethnicity) with per-output explanations.

- :func:`load_utkface` (strict file-name parsing, :func:`parse_utkface_name`),
  :func:`load_image_folder` (any images + a CSV of labels), :func:`make_synthetic_faces`
  (offline set whose labels live in known regions, with ground-truth masks): all return an
  :class:`ImageSet`.
- :func:`run_faces`: train multi- and/or single-output networks, the Table III metrics,
  IG / GradientSHAP / Occlusion maps per output, figures, HTML and localisation scores.
"""

from deeplsm.faces._dataset import RACE_NAMES, SEX_NAMES, ImageSet, face_task
from deeplsm.faces._figures import plot_explanation_grid, plot_prediction_example
from deeplsm.faces._run import (
    METHODS,
    MODES,
    default_hyperparameters,
    explain_images,
    localisation,
    occlusion_geometry,
    run_faces,
    table3,
)
from deeplsm.faces._synthetic import COLOURS, make_synthetic_faces, region_masks
from deeplsm.faces._utkface import load_image_folder, load_utkface, parse_utkface_name, read_image

__all__ = [
    "COLOURS",
    "METHODS",
    "MODES",
    "RACE_NAMES",
    "SEX_NAMES",
    "ImageSet",
    "default_hyperparameters",
    "explain_images",
    "face_task",
    "load_image_folder",
    "load_utkface",
    "localisation",
    "make_synthetic_faces",
    "occlusion_geometry",
    "parse_utkface_name",
    "plot_explanation_grid",
    "plot_prediction_example",
    "read_image",
    "region_masks",
    "run_faces",
    "table3",
]
