"""Journeys: triggered, versioned paths of waits, branches, splits and actions per member."""
