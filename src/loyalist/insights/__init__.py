"""The console's analytics section (issue 10, item 9): RFM segments and their movement,
cohort retention, CLV and P(alive) per segment, valuable members at risk; computed in the
background by ``loyalist.analytics`` on the programme's own orders."""
