"""OctopusNet building blocks (docs/algorithms/octopus.md): arms, nerve ring, coordinator, SFF heads."""

from octo.nn.octopus.cg_arm import CGArm
from octo.nn.octopus.cnn_arm import CNNArm
from octo.nn.octopus.competition import COMPETITIONS, compete
from octo.nn.octopus.coordinator import Coordinator
from octo.nn.octopus.decoder import ModuleDecoder
from octo.nn.octopus.nerve_ring import NerveRing
from octo.nn.octopus.net import ARM_TYPES, OctopusNet
from octo.nn.octopus.seq_arms import LSTMArm, TransformerArm
from octo.nn.octopus.sff import LogitCoordinator, SFFHeads

__all__ = ["ARM_TYPES", "COMPETITIONS", "CGArm", "CNNArm", "Coordinator", "LSTMArm", "LogitCoordinator",
           "ModuleDecoder", "NerveRing", "OctopusNet", "SFFHeads", "TransformerArm", "compete"]
