"""Daily habits: check-ins and streaks, activity points, badges, challenges, leaderboards."""
