/** Path prefix of every API route (kept from the earlier Spring design's `@RequestMapping("/api/v1/disaster-recovery")`). */
export const API_PREFIX = 'api/v1/disaster-recovery';
