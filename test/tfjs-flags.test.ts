import { describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { applyTfjsFlags, parseTfjsFlags } from "../src/backend/tfjs-flags.js";

describe("EDGEINF_TFJS_FLAGS", () => {
  it("parses NAME=value lists into numbers, booleans and strings; unset or blank is no flags", () => {
    expect(parseTfjsFlags(undefined)).toEqual([]);
    expect(parseTfjsFlags("  ")).toEqual([]);
    expect(parseTfjsFlags("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64, WEBGPU_CPU_FORWARD=false,X2=abc,Y=1e3")).toEqual([
      ["WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", 64],
      ["WEBGPU_CPU_FORWARD", false],
      ["X2", "abc"],
      ["Y", 1000],
    ]);
  });

  it("rejects an item that is not NAME=value with one line naming it", () => {
    expect(() => parseTfjsFlags("A=1,B")).toThrow(/^EDGEINF_TFJS_FLAGS: "B" is not NAME=value — write e\.g\./);
    expect(() => parseTfjsFlags("lower=1")).toThrow(/"lower=1" is not NAME=value/);
    expect(() => parseTfjsFlags("A=")).toThrow(/"A=" is not NAME=value/);
  });

  it("sets a registered flag and refuses one the running backend does not register", async () => {
    await tf.ready();
    const before = tf.env().getBool("CHECK_COMPUTATION_FOR_ERRORS");
    try {
      applyTfjsFlags([["CHECK_COMPUTATION_FOR_ERRORS", !before]]);
      expect(tf.env().getBool("CHECK_COMPUTATION_FOR_ERRORS")).toBe(!before);
    } finally {
      tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", before);
    }
    expect(() => applyTfjsFlags([["NO_SUCH_FLAG", 1]])).toThrow(/^EDGEINF_TFJS_FLAGS: tfjs has no flag NO_SUCH_FLAG with the \w+ backend — /);
  });
});
