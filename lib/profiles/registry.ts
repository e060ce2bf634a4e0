/**
 * The accounting profiles a policy can name (`framework`), in one table. Adding a profile is
 * one folder implementing `AccountingProfile` plus one entry here.
 */

import type { AccountingProfile } from "./profile.ts";
import { OURS_PROFILE } from "./ours/profile.ts";
import { HF_PROFILE } from "./hf/profile.ts";

/** The profiles by name. */
const PROFILES: Readonly<Record<Framework, AccountingProfile>> = Object.freeze({
  ours: OURS_PROFILE,
  hf: HF_PROFILE,
});

/** The frameworks a plan can count: this workbench's runtime, or transformers + PyTorch. */
export const FRAMEWORKS = ["ours", "hf"] as const;

/** One of {@link FRAMEWORKS}. */
export type Framework = typeof FRAMEWORKS[number];

/** Parses a framework name; the error names the allowed values. */
export function parseFramework(v: string, what = "--framework"): Framework {
  if ((FRAMEWORKS as readonly string[]).includes(v)) return v as Framework;
  throw new Error(
    `${what}: unknown framework "${v}"; frameworks are ${
      FRAMEWORKS.join(", ")
    } (ours = this workbench's runtime, hf = Hugging Face transformers + PyTorch)`,
  );
}

/** The profile of a framework name (default `ours`). */
export function accountingProfile(framework: Framework | undefined): AccountingProfile {
  return PROFILES[framework ?? "ours"];
}
