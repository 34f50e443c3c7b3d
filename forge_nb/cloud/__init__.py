"Cloud runtimes beside the training stage (they take the training config as a dict and never import the trainer): AWS set-up, SageMaker training jobs and their container entrypoint, HyperPod jobs, the pre-submit plan, clean-up."
from .aws import AwsContext, aws_context, project_tags, setup_plan, apply, role_policy, register_kernel, kernel_command
from .plan import GPUS_PER_INSTANCE, PRICES, TRAINING_IMAGES, training_image, estimate, tokens_to_train, JobPlan
from .sagemaker import (SageMakerRuntime, SageMakerTrainingJob, sagemaker_training_request, submit_sagemaker, hyperparameters,
                        build_wheel, stage_plan)
from .hyperpod import (HyperPodRuntime, HyperPodJob, hyperpod_job_manifest, manifests_yaml, validate_pytorchjob, connect_cluster,
                       kubeconfig_for, PYTORCHJOB_SCHEMA)
from .cleanup import cleanup, inventory
