/** Learning rate at `step` (0-based): linear warmup to `peakLr`, then cosine decay to peakLr·minLrRatio at totalSteps. */
export function learningRate(step: number, peakLr: number, warmupSteps: number, totalSteps: number, minLrRatio: number): number {
  if (warmupSteps > 0 && step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / span);
  const minLr = peakLr * minLrRatio;
  return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress));
}
