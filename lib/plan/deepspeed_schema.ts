/**
 * The part of DeepSpeed's configuration that `plan --export deepspeed` writes, as a schema
 * written from DeepSpeed's documented config keys, and a validator.
 *
 * Source: the DeepSpeed configuration JSON page, https://www.deepspeed.ai/docs/config-json/
 * (`docs/_pages/config-json.md` in github.com/deepspeedai/DeepSpeed): "Batch Size Related
 * Parameters", "Optimizer Parameters", "BFLOAT16 training options", "FP16 training options",
 * "Gradient Clipping", "ZeRO Optimizations for FP16 Training", "Parameter offloading",
 * "Optimizer offloading", "Activation Checkpointing". Two top-level keys are read by
 * `deepspeed/runtime/config.py` but not on that page: `sequence_parallel_size` (Ulysses SP
 * degree; DeepSpeed divides the data-parallel world size by it, and ArcticTraining writes it)
 * and `seq_parallel_communication_data_type` (`deepspeed/runtime/constants.py`).
 *
 * The schema is closed: a key it does not list is an error, so a misspelt key (which DeepSpeed
 * would silently ignore) is caught here. DeepSpeed itself cannot run on this machine (no CUDA
 * device); this schema is the check the export gets.
 */

/** A value's type in the schema. */
export type SchemaNode =
  | { type: "boolean" }
  | { type: "integer"; min?: number; max?: number }
  | { type: "number"; min?: number; exclusiveMin?: number; max?: number }
  | { type: "string"; enum?: readonly string[] }
  | { type: "array"; items: SchemaNode; length?: number }
  | {
    type: "object";
    properties: Readonly<Record<string, SchemaNode>>;
    required?: readonly string[];
  };

const bool = { type: "boolean" } as const;
const posInt = { type: "integer", min: 1 } as const;
const elements = { type: "number", min: 0 } as const; // sizes in elements (5e8 is written as a number)

/** DeepSpeed's `offload_param` / `offload_optimizer` dictionaries. */
const offload = (extra: Record<string, SchemaNode>): SchemaNode => ({
  type: "object",
  properties: {
    device: { type: "string", enum: ["cpu", "nvme", "none"] },
    nvme_path: { type: "string" },
    pin_memory: bool,
    buffer_count: posInt,
    ...extra,
  },
  required: ["device"],
});

/** The documented keys the export may write (closed at every level). */
const DEEPSPEED_SCHEMA: SchemaNode = {
  type: "object",
  properties: {
    // Batch Size Related Parameters
    train_batch_size: posInt,
    train_micro_batch_size_per_gpu: posInt,
    gradient_accumulation_steps: posInt,
    // Optimizer Parameters
    optimizer: {
      type: "object",
      properties: {
        type: { type: "string", enum: ["Adam", "AdamW", "OneBitAdam", "Lamb", "OneBitLamb"] },
        params: {
          type: "object",
          properties: {
            lr: { type: "number", exclusiveMin: 0 },
            betas: { type: "array", items: { type: "number", min: 0, max: 1 }, length: 2 },
            eps: { type: "number", exclusiveMin: 0 },
            weight_decay: { type: "number", min: 0 },
          },
        },
      },
      required: ["type"],
    },
    // BFLOAT16 / FP16 training options
    bf16: {
      type: "object",
      properties: {
        enabled: bool,
        bf16_master_weights_and_grads: bool,
        bf16_optimizer_states: bool,
      },
      required: ["enabled"],
    },
    fp16: {
      type: "object",
      properties: { enabled: bool, loss_scale: { type: "number", min: 0 } },
      required: ["enabled"],
    },
    // Gradient Clipping
    gradient_clipping: { type: "number", min: 0 },
    // ZeRO Optimizations, Parameter offloading, Optimizer offloading
    zero_optimization: {
      type: "object",
      properties: {
        stage: { type: "integer", min: 0, max: 3 },
        allgather_partitions: bool,
        allgather_bucket_size: elements,
        overlap_comm: bool,
        reduce_scatter: bool,
        reduce_bucket_size: elements,
        contiguous_gradients: bool,
        offload_param: offload({
          buffer_size: elements,
          max_in_cpu: elements,
        }),
        offload_optimizer: offload({
          ratio: { type: "number", min: 0, max: 1 },
          fast_init: bool,
        }),
        stage3_max_live_parameters: elements,
        stage3_max_reuse_distance: elements,
        stage3_prefetch_bucket_size: elements,
        stage3_param_persistence_threshold: elements,
        sub_group_size: elements,
        stage3_gather_16bit_weights_on_model_save: bool,
        ignore_unused_parameters: bool,
        round_robin_gradients: bool,
      },
      required: ["stage"],
    },
    // Activation Checkpointing
    activation_checkpointing: {
      type: "object",
      properties: {
        partition_activations: bool,
        cpu_checkpointing: bool,
        contiguous_memory_optimization: bool,
        number_checkpoints: posInt,
        synchronize_checkpoint_boundary: bool,
        profile: bool,
      },
    },
    // read by deepspeed/runtime/config.py (Ulysses)
    sequence_parallel_size: posInt,
    seq_parallel_communication_data_type: { type: "string", enum: ["fp16", "bf16", "fp32"] },
    steps_per_print: posInt,
    wall_clock_breakdown: bool,
  },
  required: ["train_micro_batch_size_per_gpu", "zero_optimization"],
};

/**
 * Checks `value` against a schema node; returns one message per problem (empty: valid), each
 * naming the key path (e.g. `zero_optimization.offload_optimizer.device`).
 */
export function validateAgainstSchema(
  value: unknown,
  node: SchemaNode = DEEPSPEED_SCHEMA,
  path = "",
): string[] {
  const at = path || "(top level)";
  const show = JSON.stringify(value);
  switch (node.type) {
    case "boolean":
      return typeof value === "boolean" ? [] : [`${at}: expected true or false, got ${show}`];
    case "integer":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return [`${at}: expected a number, got ${show}`];
      }
      if (node.type === "integer" && !Number.isInteger(value)) {
        return [`${at}: expected an integer, got ${show}`];
      }
      const errs: string[] = [];
      if (node.min !== undefined && value < node.min) {
        errs.push(`${at}: ${value} is below ${node.min}`);
      }
      if (node.max !== undefined && value > node.max) {
        errs.push(`${at}: ${value} is above ${node.max}`);
      }
      if ("exclusiveMin" in node && node.exclusiveMin !== undefined && value <= node.exclusiveMin) {
        errs.push(`${at}: ${value} must be above ${node.exclusiveMin}`);
      }
      return errs;
    }
    case "string":
      if (typeof value !== "string") return [`${at}: expected a string, got ${show}`];
      return node.enum && !node.enum.includes(value)
        ? [`${at}: "${value}" is not one of ${node.enum.join(", ")}`]
        : [];
    case "array": {
      if (!Array.isArray(value)) return [`${at}: expected an array, got ${show}`];
      const errs = node.length !== undefined && value.length !== node.length
        ? [`${at}: expected ${node.length} items, got ${value.length}`]
        : [];
      value.forEach((v, i) => errs.push(...validateAgainstSchema(v, node.items, `${path}[${i}]`)));
      return errs;
    }
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return [`${at}: expected an object, got ${show}`];
      }
      const errs: string[] = [];
      const obj = value as Record<string, unknown>;
      for (const k of node.required ?? []) {
        if (!(k in obj)) errs.push(`${path ? path + "." : ""}${k}: required key missing`);
      }
      for (const [k, v] of Object.entries(obj)) {
        const key = path ? `${path}.${k}` : k;
        const child = node.properties[k];
        if (!child) {
          errs.push(
            `${key}: not a documented DeepSpeed key here; known: ${
              Object.keys(node.properties).join(", ")
            }`,
          );
        } else errs.push(...validateAgainstSchema(v, child, key));
      }
      return errs;
    }
  }
}
