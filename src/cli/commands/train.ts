import type { CommandModule } from "yargs";
import { loadRecipe } from "../../training/recipe.js";
import { train } from "../../training/train.js";
import { lastCheckpoint } from "../../training/step-checks.js";
import { BACKEND_CHOICES, backendRequest, log, type BackendChoice } from "../common.js";

interface TrainArgs {
  recipe: string;
  set?: string[];
  resume?: boolean;
  backend?: string;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: "train",
  describe: "Train the memory-gating module (gate + memory projections) from a recipe; the backbone stays frozen",
  builder: (y) =>
    y
      .option("recipe", { alias: "r", type: "string", demandOption: true, describe: "recipe YAML (see recipes/)" })
      .option("set", { type: "string", array: true, describe: "override a recipe key (value read as YAML): --set training.steps=100 (keys: recipes/README.md)" })
      .option("resume", { type: "boolean", describe: "continue from the output folder's latest checkpoint" })
      .option("backend", { choices: BACKEND_CHOICES, type: "string", describe: "override the recipe's backend" })
      .example("$0 train --recipe recipes/quickstart.yaml", "the quickstart (stories260K, minutes on a CPU)")
      .example("$0 train --recipe recipes/quickstart.yaml --set training.steps=200 --set edgeinfinite.memoryRule=delta", "override recipe keys")
      .example("$0 train --recipe recipes/edge-lm-passkey.yaml --resume", "resume an interrupted run")
      .epilog("Every recipe key, its type, default and meaning: recipes/README.md. How training works: docs/training.md."),
  handler: async (args) => {
    const loaded = loadRecipe(args.recipe, [...(args.set ?? [])]);
    // Precedence: --backend, then EDGEINF_BACKEND, then the recipe's backend (docs/reliability.md).
    const backend = backendRequest(args.backend as BackendChoice | undefined, loaded.backend as BackendChoice) ?? (process.env["EDGEINF_BACKEND"] as BackendChoice);
    const recipe = { ...loaded, backend };
    // Ctrl-C stops at once: checkpoint writes are synchronous after their device read and atomic (temp folder,
    // rename, latest.json), so no handler runs in the middle of one and the last checkpoint is always complete.
    const onSigint = (): void => {
      const command = ["edgeinf", "train", "--recipe", args.recipe, ...(args.set ?? []).flatMap((s) => ["--set", s]), ...(args.backend ? ["--backend", args.backend] : [])];
      const last = lastCheckpoint(recipe.output);
      log(
        last
          ? `interrupted: the last checkpoint is ${last.dir} (step ${last.step} of ${recipe.training.steps}); continue with: ${[...command, "--resume"].map(shellQuote).join(" ")}`
          : `interrupted before the first checkpoint (step ${Math.min(recipe.training.checkpointInterval, recipe.training.steps)}); start again with: ${command.map(shellQuote).join(" ")}`,
      );
      process.exit(130);
    };
    process.on("SIGINT", onSigint);
    try {
      const result = await train(recipe, { resume: args.resume, log });
      console.log(JSON.stringify(result, null, 2));
    } finally {
      process.off("SIGINT", onSigint);
    }
  },
};

/** `arg` as a shell word: unchanged when it is plain, else in single quotes. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}
