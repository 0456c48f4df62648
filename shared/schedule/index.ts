/** Microbatch paths (CheckFree+ swap aware) and a pipeline schedule simulator. */
export * from './paths';
export * from './simulate';
