/** Path prefix of every API route (the seed's `@RequestMapping("/api/v1/disaster-recovery")`). */
export const API_PREFIX = 'api/v1/disaster-recovery';
