"""Traffic policies: shadow, canary, A/B and bandit rollouts, their routing and their guard."""
