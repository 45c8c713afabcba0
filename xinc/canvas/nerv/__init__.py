"""NeRV contribution maps (docs/method.md §3.4): one neuron per conv kernel slice (input i,
output k).

`layers` holds the geometry and Steps A–B shared by every mode, `reference` the authors' maps
(Steps C–D), `exact` the rescale rule (docs/method.md §4.2) with `probe` (its fast path),
`iterate` the chunked iteration and the `bias` / `neuron` switches. A new mode is one map
function registered in `MODES`.
"""

from xinc.canvas._common import BIAS_MODES, NEURON_MODES, check_switches
from xinc.canvas.nerv.exact import (
    exact_bias_terms,
    exact_gains,
    exact_maps,
    exact_rgb_maps,
    push_exact,
)
from xinc.canvas.nerv.iterate import MODES, MapFn, channel_maps, fill_nerv, iter_nerv
from xinc.canvas.nerv.layers import (
    as_time,
    layer_conv,
    layer_input,
    layer_names,
    n_neurons,
    per_kernel_conv,
    placed_maps,
)
from xinc.canvas.nerv.probe import Prober
from xinc.canvas.nerv.reference import Pipeline, reference_maps
from xinc.canvas.nerv.stages import stage_taps, stages

__all__ = ["BIAS_MODES", "MODES", "NEURON_MODES", "MapFn", "Pipeline", "Prober", "as_time",
           "channel_maps", "check_switches", "exact_bias_terms", "exact_gains", "exact_maps",
           "exact_rgb_maps", "fill_nerv", "iter_nerv", "layer_conv", "layer_input",
           "layer_names", "n_neurons", "per_kernel_conv", "placed_maps", "push_exact",
           "reference_maps", "stage_taps", "stages"]
