"""The training engine: copies = conditions x seeds, random streams, optimisers, two loops.

Modules:
    copies    Copies.grid(seeds, **conditions): one row per batched copy, settings as columns
    streams   STREAMS (name -> id, the one random-stream table); Stream(seeds, name, device):
              every draw after initialisation, on the device (draw: the counter-based hash);
              generators(seeds, name): CPU generators for network initialisation
    optim     make(name, params, lr, ...): sgd, sgd-momentum, adam, rmsprop with a per-copy lr
    loops     fit (D only, critic only, classifier) and gan (k D steps, a G step, hooks), both
              with schedules and evaluation at scheduled steps returning tidy curves;
              graphs=True runs each update as a static step (captured and replayed on CUDA)
    graph     StaticStep: the static-buffer contract of a CUDA graph, eager off CUDA;
              use_graphs(device): the one switch (CUDA, unless $REPRO_GRAPHS=0; "1" forces the
              static path on any device, the CPU's check that it equals eager bit for bit)

The engine knows nothing about any claim (issue 15). repro.train.train_gan (checkpoints, logging,
snapshots) runs on ``gan``; repro.train's fresh-D protocol moves here in a later commit.
"""

from repro.engine import optim
from repro.engine.copies import Copies
from repro.engine.graph import use_graphs
from repro.engine.loops import Result, cosine, fit, gan, update
from repro.engine.streams import STREAMS, Stream, draw, generators, stream_id

__all__ = [
    "STREAMS",
    "Stream",
    "Copies",
    "Result",
    "cosine",
    "draw",
    "fit",
    "gan",
    "generators",
    "optim",
    "stream_id",
    "update",
    "use_graphs",
]
