"""Webhooks: signed event deliveries to integrators (Standard Webhooks)."""
