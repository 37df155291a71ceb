"""Probabilistic customer-base models fitted by maximum likelihood."""

from loyalist.analytics.models._base import ConvergenceReport, FitResult
from loyalist.analytics.models.bgnbd import BGNBD
from loyalist.analytics.models.gammagamma import GammaGamma
from loyalist.analytics.models.paretonbd import ParetoNBD

__all__ = ["BGNBD", "ConvergenceReport", "FitResult", "GammaGamma", "ParetoNBD"]
