"""Fraud controls (风控): velocity rules over counters, holds, blocks, frozen members."""
